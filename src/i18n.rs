//! Built-in wording (English and French) and the page's overrides.
//!
//! Every string the widget shows has a key; a site replaces any of them with
//! `strings: { key: "…" }` in its config. The wording is ours, written for
//! visitors who may be anxious about letting someone "see their screen".

/// A piece of text the widget shows, by key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Text {
    Link,
    Title,
    PrivacyIntro,
    PrivacyLink,
    Cancel,
    Close,
    ErrorNetwork,
    Retry,
    CodeLabel,
    Loading,
    CodeSpokenPrefix,
    ExpiresIn,
    Expired,
    NewCode,
    ErrorServer,
    ConsentTitle,
    ConsentText,
    Allow,
    Deny,
    ConsentError,
    Sharing,
    End,
    EndedByAgent,
    EndedByYou,
    Ended,
    FormIntro,
    NameLabel,
    EmailLabel,
    Submit,
    Guest,
    NameRequired,
    EmailRequired,
    EmailInvalid,
    ErrorIdentity,
    NotShared,
    ErrorBusy,
}

/// Config keys, in the order of [`Text`].
pub const KEYS: [&str; COUNT] = [
    "link",
    "title",
    "privacyIntro",
    "privacyLink",
    "cancel",
    "close",
    "errorNetwork",
    "retry",
    "codeLabel",
    "loading",
    "codeSpokenPrefix",
    "expiresIn",
    "expired",
    "newCode",
    "errorServer",
    "consentTitle",
    "consentText",
    "allow",
    "deny",
    "consentError",
    "sharing",
    "end",
    "endedByAgent",
    "endedByYou",
    "ended",
    "formIntro",
    "nameLabel",
    "emailLabel",
    "submit",
    "guest",
    "nameRequired",
    "emailRequired",
    "emailInvalid",
    "errorIdentity",
    "notShared",
    "errorBusy",
];

const COUNT: usize = 36;
/// The texts the boot module shows (the link, and the modal's frame with its
/// placeholder and the "couldn't reach" message) come first in [`Text`], so
/// its build links only those.
const FRAME: usize = 10;

/// [`KEYS`] for messages, written out: joining at run time would link the
/// joining code into the boot module.
pub const KEY_LIST: &str = "link, title, privacyIntro, privacyLink, cancel, close, errorNetwork, \
     retry, codeLabel, loading, codeSpokenPrefix, expiresIn, expired, \
     newCode, errorServer, consentTitle, consentText, allow, deny, \
     consentError, sharing, end, endedByAgent, endedByYou, ended, \
     formIntro, nameLabel, emailLabel, submit, guest, nameRequired, \
     emailRequired, emailInvalid, errorIdentity, notShared, errorBusy";

/// The key of the list of notices shown above the code.
pub const NOTICES_KEY: &str = "notices";

const EN: [&str; FRAME] = [
    "Agent Assist",
    "Share your screen with support",
    "To learn how we handle your data, read our",
    "Privacy Statement",
    "Cancel",
    "Close",
    "We couldn't reach our support service. Check your connection and try again.",
    "Try again",
    "Your support code",
    "Getting your code…",
];

/// The rest of [`EN`] (the widget module only).
#[cfg(not(feature = "boot"))]
const EN_MORE: [&str; COUNT - FRAME] = [
    "Your support code is",
    "Expires in",
    "This code has expired.",
    "Get a new code",
    "Something went wrong on our side. Please try again in a moment.",
    "Allow {agent} to see this page?",
    "{agent} from our support team is asking to see this website the way you see it. Passwords and other private details stay hidden, and {agent} can't click, type or change anything. You can stop at any time.",
    "Allow",
    "Deny",
    "We couldn't send your answer. Please try again.",
    "Your screen is being shared with {agent}",
    "Stop sharing",
    "{agent} ended the session.",
    "You stopped sharing.",
    "The session has ended.",
    "So our agent knows who they are helping, please tell us your name and email.",
    "Your name",
    "Your email",
    "Get my code",
    "Continue as guest",
    "Enter your name.",
    "Enter your email address.",
    "Enter an email address like name@example.com.",
    "We couldn't confirm who you are. Please reload the page and try again.",
    "This page is not shared with {agent}",
    "You've asked for several codes in a short time. Please wait a minute, then try again.",
];

const EN_NOTICES: [&str; 5] = [
    "Sharing lets a support agent see this website the way you see it, so they can guide you.",
    "Only use it while you are talking to one of our agents by phone or chat.",
    "The agent sees only the pages and fields of this site that we allow, and nothing else on your device.",
    "Passwords and other sensitive details stay hidden, and the agent cannot click, type or change anything.",
    "Read the code below to your agent, then follow their instructions.",
];

const FR: [&str; FRAME] = [
    "Agent Assist",
    "Partager votre écran avec le support",
    "Pour savoir comment nous traitons vos données, consultez notre",
    "Déclaration de confidentialité",
    "Annuler",
    "Fermer",
    "Impossible de joindre notre service d'assistance. Vérifiez votre connexion et réessayez.",
    "Réessayer",
    "Votre code d'assistance",
    "Obtention de votre code…",
];

/// The rest of [`FR`] (the widget module only).
#[cfg(not(feature = "boot"))]
const FR_MORE: [&str; COUNT - FRAME] = [
    "Votre code d'assistance est",
    "Expire dans",
    "Ce code a expiré.",
    "Obtenir un nouveau code",
    "Un problème est survenu de notre côté. Réessayez dans un instant.",
    "Autoriser {agent} à voir cette page ?",
    "{agent}, de notre équipe d'assistance, demande à voir ce site tel que vous le voyez. Les mots de passe et autres données privées restent masqués, et {agent} ne peut ni cliquer, ni saisir, ni modifier quoi que ce soit. Vous pouvez arrêter à tout moment.",
    "Autoriser",
    "Refuser",
    "Impossible d'envoyer votre réponse. Veuillez réessayer.",
    "Votre écran est partagé avec {agent}",
    "Arrêter le partage",
    "{agent} a mis fin à la session.",
    "Vous avez arrêté le partage.",
    "La session est terminée.",
    "Pour que notre conseiller sache qui il aide, indiquez-nous votre nom et votre adresse e-mail.",
    "Votre nom",
    "Votre adresse e-mail",
    "Obtenir mon code",
    "Continuer sans m'identifier",
    "Saisissez votre nom.",
    "Saisissez votre adresse e-mail.",
    "Saisissez une adresse e-mail de la forme nom@exemple.com.",
    "Nous n'avons pas pu confirmer votre identité. Rechargez la page et réessayez.",
    "Cette page n'est pas partagée avec {agent}",
    "Vous avez demandé plusieurs codes en peu de temps. Patientez une minute, puis réessayez.",
];

const FR_NOTICES: [&str; 5] = [
    "Le partage permet à un conseiller de voir ce site comme vous le voyez, pour vous guider.",
    "Utilisez-le uniquement pendant un échange avec l'un de nos conseillers, par téléphone ou par chat.",
    "Le conseiller ne voit que les pages et les champs de ce site que nous autorisons, rien d'autre sur votre appareil.",
    "Les mots de passe et autres données sensibles restent masqués, et le conseiller ne peut ni cliquer, ni saisir, ni modifier quoi que ce soit.",
    "Lisez le code ci-dessous à votre conseiller, puis suivez ses instructions.",
];

/// Replaces every `{agent}` in `template` with `agent`. Written with a
/// char search because a `&str` pattern would link a substring searcher.
pub fn fill(template: &str, agent: &str) -> String {
    const MARK: &str = "{agent}";
    let mut out = String::with_capacity(template.len() + agent.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        // `get` rather than indexing: `{` is one byte, so these never fail,
        // and no panic path is linked for them.
        out.push_str(rest.get(..i).unwrap_or_default());
        let from = rest.get(i..).unwrap_or_default();
        match from.strip_prefix(MARK) {
            Some(after) => {
                out.push_str(agent);
                rest = after;
            }
            None => {
                out.push('{');
                rest = from.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// The locales with built-in wording.
pub const LOCALES: [&str; 2] = ["en", "fr"];

/// The resolved wording of one widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Strings {
    /// `lang` attribute for the widget's root, e.g. `fr`.
    pub lang: &'static str,
    texts: Vec<String>,
    pub notices: Vec<String>,
}

impl Strings {
    /// The built-in wording for a BCP 47 language tag: French for `fr`,
    /// `fr-CA`…, English for everything else.
    pub fn for_locale(tag: &str) -> Strings {
        let french = tag.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("fr"))
            && tag.get(2..3).is_none_or(|sep| sep == "-" || sep == "_");
        let (lang, frame, notices) = if french {
            ("fr", &FR, &FR_NOTICES[..])
        } else {
            ("en", &EN, &EN_NOTICES[..])
        };
        // The boot module needs only the frame's texts; the rest are
        // placeholders there, still overridable so the config check is the
        // same in both modules.
        #[cfg(feature = "boot")]
        let more = &[""; COUNT - FRAME];
        #[cfg(not(feature = "boot"))]
        let more = if french { &FR_MORE } else { &EN_MORE };
        Strings {
            lang,
            texts: frame.iter().chain(more).map(|s| (*s).to_owned()).collect(),
            notices: notices.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    pub fn get(&self, text: Text) -> &str {
        &self.texts[text as usize]
    }

    /// Replaces the text with config key `key`; false when no text has that key.
    pub fn set(&mut self, key: &str, value: String) -> bool {
        match KEYS.iter().position(|k| *k == key) {
            Some(i) => {
                self.texts[i] = value;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_is_chosen_for_every_french_tag() {
        for tag in ["fr", "FR", "fr-CA", "fr_BE"] {
            assert_eq!(Strings::for_locale(tag).lang, "fr", "{tag}");
        }
        for tag in ["en", "en-GB", "de", "", "f", "fra", "frisian"] {
            assert_eq!(Strings::for_locale(tag).lang, "en", "{tag}");
        }
    }

    #[test]
    fn both_locales_have_every_text_and_notices() {
        for tag in LOCALES {
            let s = Strings::for_locale(tag);
            for (i, key) in KEYS.iter().enumerate() {
                assert!(!s.texts[i].is_empty(), "{tag}.{key}");
            }
            assert_eq!(s.notices.len(), 5);
        }
        assert_ne!(Strings::for_locale("fr").get(Text::Cancel), "Cancel");
    }

    #[test]
    fn the_key_list_in_messages_names_every_key() {
        assert_eq!(KEY_LIST, KEYS.join(", "));
    }

    #[test]
    fn fill_puts_the_agent_name_in_every_placeholder() {
        assert_eq!(
            fill("Allow {agent}? {agent} waits.", "Dana"),
            "Allow Dana? Dana waits."
        );
        assert_eq!(fill("no placeholder", "Dana"), "no placeholder");
        assert_eq!(fill("{brace} {agent}", "<b>"), "{brace} <b>");
        assert_eq!(fill("{agent", "Dana"), "{agent");
        assert_eq!(fill("é{agent}é", "Zoë"), "éZoëé");
    }

    #[test]
    fn overrides_replace_one_text_and_reject_unknown_keys() {
        let mut s = Strings::for_locale("en");
        assert!(s.set("cancel", "Never mind".into()));
        assert_eq!(s.get(Text::Cancel), "Never mind");
        assert_eq!(s.get(Text::Close), "Close");
        assert!(!s.set("cancle", "x".into()));
    }
}
