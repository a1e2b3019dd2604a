//! Everything the console says, and the pure rules behind it: what a pasted
//! code means, how a code and a duration are written, which sentence goes
//! with which session state, how a visitor's identity and earlier sessions
//! are described. No DOM here, so it is tested natively.

use agent_assist_protocol::{EndReason, IdentityKind, SessionState};

/// The console's wording, in one place.
pub mod say {
    pub const TITLE: &str = "Agent console";
    pub const SIGN_IN_TITLE: &str = "Sign in";
    pub const SIGN_IN_INTRO: &str =
        "Use the agent token your administrator gave you, or a sign-in token from your CRM. \
         It is kept for this browser tab only.";
    pub const TOKEN_LABEL: &str = "Agent token";
    pub const SIGN_IN: &str = "Sign in";
    pub const SIGNING_IN: &str = "Signing in\u{2026}";
    pub const CHECKING: &str = "Checking your sign-in\u{2026}";
    pub const TOKEN_EMPTY: &str = "Enter your agent token.";
    pub const TOKEN_REFUSED: &str = "The broker did not accept that token. Check it and try again.";
    pub const SESSION_LOST: &str = "Your sign-in has expired or was revoked. Sign in again.";
    pub const SIGNED_OUT: &str = "You signed out.";
    pub const SIGN_OUT: &str = "Sign out";

    pub const CODE_TITLE: &str = "Connect to a visitor";
    pub const CODE_INTRO: &str =
        "Ask the visitor to open Agent Assist on the site and read out the 6-digit code.";
    pub const CODE_GROUP: &str = "Support code";
    pub const CONNECT: &str = "Connect";
    pub const CONNECTING: &str = "Connecting\u{2026}";
    pub const CODE_INCOMPLETE: &str = "Enter all 6 digits of the code.";
    pub const BAD_PASTE: &str = "That is not a support code. Paste the 6 digits, like 123 456.";
    pub const UNLOCKED: &str = "You can enter a code again.";

    pub const NETWORK: &str = "Can't reach the broker. Try again.";
    pub const SERVER: &str = "Something went wrong at the broker. Try again.";

    pub const VISITOR: &str = "Visitor";
    pub const NAME: &str = "Name";
    pub const EMAIL: &str = "Email";
    pub const SESSION: &str = "Session";
    pub const END_SESSION: &str = "End session";
    pub const ENDING: &str = "Ending\u{2026}";
    pub const NEW_CODE: &str = "New code";
    pub const RECONNECTING: &str = "Live updates interrupted. Reconnecting\u{2026}";

    pub const USER_ID: &str = "User id";
    pub const CUSTOM_DATA: &str = "Custom data";
    pub const EARLIER_SESSIONS: &str = "Earlier sessions";
    pub const NO_EARLIER_SESSIONS: &str = "No earlier sessions";
    pub const THIS_SESSION: &str = "This session";
    pub const NO_AGENT: &str = "No agent";
    pub const RESUMING: &str = "Returning to your session\u{2026}";

    pub const MIRROR_TITLE: &str = "Visitor's screen";
    /// The frame's `title`, what a screen reader names it by.
    pub const MIRROR_FRAME: &str = "Visitor's screen";
    pub const MIRROR_LIVE: &str = "Live";
    pub const MIRROR_WAITING: &str = "Waiting for the visitor's page\u{2026}";
    pub const MIRROR_HIDDEN: &str = "The visitor is on a page that is not shared";
    pub const MIRROR_CHANGING: &str = "The visitor is changing page\u{2026}";
    pub const MIRROR_RECONNECTING: &str = "Reconnecting\u{2026}";
    pub const MIRROR_REFUSED: &str =
        "The broker did not let this console see the visitor's screen. Reload to try again.";
    pub const MIRROR_ELSEWHERE: &str =
        "The visitor's screen is open in another window. Reload to show it here.";
    pub const MIRROR_CLOSED: &str = "The visitor's screen is no longer shared";
    pub const MIRROR_UNTITLED: &str = "Untitled page";
}

/// Digits in a code box.
pub const CODE_LEN: usize = 6;

/// What a pasted text means for the code boxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paste {
    /// A whole code (`123456`, `123 456`, `123-456`): fills every box.
    Whole(String),
    /// Fewer than six digits: fills boxes from the one pasted into.
    Part(String),
    /// Anything else; nothing is changed.
    Invalid,
}

/// Reads pasted text: spaces, dashes and dots between digits are how people
/// write codes down, anything else means it is not a code.
pub fn read_paste(text: &str) -> Paste {
    let mut digits = String::with_capacity(CODE_LEN);
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '\u{00a0}' | '\t' | '-' | '\u{2010}'..='\u{2015}' | '.' => {}
            _ => return Paste::Invalid,
        }
    }
    match digits.len() {
        0 => Paste::Invalid,
        CODE_LEN => Paste::Whole(digits),
        n if n < CODE_LEN => Paste::Part(digits),
        _ => Paste::Invalid,
    }
}

/// `123456` → `123 456`, the way the visitor sees it.
pub fn group(code: &str) -> String {
    if code.len() == CODE_LEN && code.is_ascii() {
        [&code[..3], " ", &code[3..]].concat()
    } else {
        code.to_owned()
    }
}

pub fn no_such_code(code: &str) -> String {
    [
        "No live code matches ",
        &group(code),
        ". Check the digits with the visitor.",
    ]
    .concat()
}

/// A wait in words, rounded up: `4 min`; `45 s` under a minute, `3 h`
/// over two hours (a site-wide or daily lock).
pub fn wait(secs: u32) -> String {
    let (n, unit) = if secs > 7200 {
        (secs.div_ceil(3600), " h")
    } else if secs >= 60 {
        (secs.div_ceil(60), " min")
    } else {
        (secs.max(1), " s")
    };
    [n.to_string().as_str(), unit].concat()
}

pub fn locked(secs: u32) -> String {
    ["Too many wrong codes. Try again in ", &wait(secs), "."].concat()
}

/// Seconds as `m:ss` (or `h:mm:ss` from an hour on), for countdowns.
pub fn clock(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let two = |n: u32| [if n < 10 { "0" } else { "" }, &n.to_string()].concat();
    if h > 0 {
        [h.to_string(), ":".into(), two(m), ":".into(), two(s)].concat()
    } else {
        [m.to_string(), ":".into(), two(s)].concat()
    }
}

pub fn unlocks_in(secs: u32) -> String {
    ["Code entry unlocks in ", &clock(secs)].concat()
}

pub fn consent_time_left(secs: u32) -> String {
    ["The request times out in ", &clock(secs)].concat()
}

pub fn signed_in_as(agent: &str, site: &str) -> String {
    ["Signed in as ", agent, " \u{00b7} ", site].concat()
}

/// The sentence for a session's state, as announced in the status region.
pub fn state_sentence(state: SessionState, reason: Option<EndReason>) -> &'static str {
    match state {
        SessionState::Pending | SessionState::Authorizing => {
            "Waiting for the visitor to allow you in\u{2026}"
        }
        SessionState::Active => "Connected \u{2014} the visitor allowed you in",
        SessionState::Ended => match reason {
            Some(EndReason::ConsentDenied) => "The visitor denied the request",
            Some(EndReason::AuthorizingTimeout) => "The visitor didn't answer in time",
            Some(EndReason::DeviceCancelled) => "The visitor cancelled",
            Some(EndReason::DeviceEnded) => "The visitor ended the session",
            Some(EndReason::AgentEnded) => "You ended the session",
            Some(EndReason::PendingTimeout) => "The code expired",
            None => "The session ended",
        },
    }
}

/// The short label of the state badge next to the sentence.
pub fn state_badge(state: SessionState) -> &'static str {
    match state {
        SessionState::Pending | SessionState::Authorizing => "Waiting",
        SessionState::Active => "Connected",
        SessionState::Ended => "Ended",
    }
}

/// The badge that says how much of the visitor's identity is proven.
pub fn identity_badge(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Verified => "Verified",
        IdentityKind::Typed => "Unverified \u{2014} typed by the visitor",
        IdentityKind::Anonymous => "Anonymous visitor",
    }
}

/// What the badge means for the agent: a typed name or email is only a
/// claim, so account details wait until the visitor has proven who they are.
pub fn identity_hint(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Verified => "Signed by the site: this is its logged-in user.",
        IdentityKind::Typed => {
            "Anyone can type a name or email. Confirm who they are before discussing an account."
        }
        IdentityKind::Anonymous => "The visitor gave no name or email.",
    }
}

/// How a session in the visitor's history went, in words. The sentences of
/// the status region, except that the agent who ended an earlier session
/// may have been someone else, and a session still going is one word.
pub fn ticket_outcome(state: SessionState, reason: Option<EndReason>) -> &'static str {
    match (state, reason) {
        // A code no agent has redeemed yet.
        (SessionState::Pending, _) => "Waiting for an agent",
        (SessionState::Authorizing, _) => "Waiting for consent",
        (SessionState::Active, _) => "Active",
        (SessionState::Ended, Some(EndReason::AgentEnded)) => "The agent ended the session",
        (SessionState::Ended, reason) => state_sentence(SessionState::Ended, reason),
    }
}

/// Who took a session in the visitor's history.
pub fn ticket_agent(name: Option<&str>) -> String {
    match name {
        Some(name) => ["Agent: ", name].concat(),
        None => say::NO_AGENT.into(),
    }
}

/// Where the mirror's socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorLink {
    /// The first connection, not open yet.
    Connecting,
    Open,
    /// The connection dropped; it is being made again.
    Retrying,
    /// The broker refused the agent's credential for the view.
    Refused,
    /// Another console window took the view over.
    Elsewhere,
    /// The broker closed the view: the session is not active any more.
    Closed,
}

/// What the mirror holds of the visitor's page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorPage {
    /// Nothing yet.
    None,
    Shown,
    /// The visitor is on a page that is not shared.
    Hidden,
}

/// The mirror's status line: the connection first, then whether the
/// visitor's page is there (`online`: the broker's presence).
pub fn mirror_status(link: MirrorLink, page: MirrorPage, online: bool) -> &'static str {
    match (link, page, online) {
        (MirrorLink::Refused, ..) => say::MIRROR_REFUSED,
        (MirrorLink::Elsewhere, ..) => say::MIRROR_ELSEWHERE,
        (MirrorLink::Closed, ..) => say::MIRROR_CLOSED,
        (MirrorLink::Retrying, ..) => say::MIRROR_RECONNECTING,
        (MirrorLink::Connecting, ..) | (_, MirrorPage::None, _) => say::MIRROR_WAITING,
        (MirrorLink::Open, _, false) => say::MIRROR_CHANGING,
        (MirrorLink::Open, MirrorPage::Shown, true) => say::MIRROR_LIVE,
        (MirrorLink::Open, MirrorPage::Hidden, true) => say::MIRROR_HIDDEN,
    }
}

/// Whether the frame is covered, with the status line over it: missing
/// content, a page the visitor does not share, or a view that stopped is
/// never shown as if it were the visitor's screen.
pub fn mirror_covered(link: MirrorLink, page: MirrorPage) -> bool {
    matches!(
        link,
        MirrorLink::Refused | MirrorLink::Elsewhere | MirrorLink::Closed
    ) || page != MirrorPage::Shown
}

/// The first letter of a name, upper-cased, for the visitor's avatar.
pub fn initial(name: &str) -> String {
    name.trim()
        .chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    // The same tests run natively and, in the browser run, as wasm tests.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_pasted_code_may_be_grouped_with_a_space_or_a_dash() {
        for text in [
            "123456",
            "123 456",
            "123-456",
            " 123 456\n",
            "123\u{2013}456",
            "12.34.56",
        ] {
            assert_eq!(read_paste(text), Paste::Whole("123456".into()), "{text:?}");
        }
    }

    #[test]
    fn a_short_paste_is_part_of_a_code_and_anything_else_is_not_a_code() {
        assert_eq!(read_paste("12"), Paste::Part("12".into()));
        assert_eq!(read_paste("4 5"), Paste::Part("45".into()));
        for text in [
            "",
            "  ",
            "abc",
            "12a456",
            "1234567",
            "１２３４５６",
            "123_456",
        ] {
            assert_eq!(read_paste(text), Paste::Invalid, "{text:?}");
        }
    }

    #[test]
    fn codes_are_grouped_three_and_three() {
        assert_eq!(group("123456"), "123 456");
        assert_eq!(group("12345"), "12345");
        assert_eq!(
            no_such_code("004200"),
            "No live code matches 004 200. Check the digits with the visitor."
        );
    }

    #[test]
    fn waits_round_up_to_whole_minutes() {
        assert_eq!(wait(300), "5 min");
        assert_eq!(wait(301), "6 min");
        assert_eq!(wait(60), "1 min");
        assert_eq!(wait(59), "59 s");
        assert_eq!(wait(0), "1 s");
        assert_eq!(wait(7200), "120 min");
        assert_eq!(wait(7201), "3 h");
        assert_eq!(locked(900), "Too many wrong codes. Try again in 15 min.");
    }

    #[test]
    fn countdowns_read_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(9), "0:09");
        assert_eq!(clock(120), "2:00");
        assert_eq!(clock(671), "11:11");
        assert_eq!(clock(3600), "1:00:00");
        assert_eq!(clock(86_399), "23:59:59");
    }

    #[test]
    fn every_end_reason_has_its_own_sentence() {
        let reasons = [
            EndReason::PendingTimeout,
            EndReason::AuthorizingTimeout,
            EndReason::DeviceCancelled,
            EndReason::ConsentDenied,
            EndReason::DeviceEnded,
            EndReason::AgentEnded,
        ];
        let sentences: Vec<_> = reasons
            .iter()
            .map(|r| state_sentence(SessionState::Ended, Some(*r)))
            .collect();
        for (i, s) in sentences.iter().enumerate() {
            assert!(!sentences[..i].contains(s), "{s} is used twice");
        }
        assert_eq!(
            state_sentence(SessionState::Ended, Some(EndReason::AgentEnded)),
            "You ended the session"
        );
    }

    #[test]
    fn each_identity_kind_has_its_own_badge_and_hint() {
        let kinds = [
            IdentityKind::Anonymous,
            IdentityKind::Typed,
            IdentityKind::Verified,
        ];
        assert_eq!(
            kinds.map(identity_badge),
            [
                "Anonymous visitor",
                "Unverified \u{2014} typed by the visitor",
                "Verified"
            ]
        );
        let hints = kinds.map(identity_hint);
        assert!(hints[1].contains("Confirm who they are"));
        assert_ne!(hints[0], hints[2]);
    }

    #[test]
    fn a_ticket_outcome_names_who_ended_it_without_saying_you() {
        assert_eq!(
            ticket_outcome(SessionState::Ended, Some(EndReason::AgentEnded)),
            "The agent ended the session"
        );
        assert_eq!(
            ticket_outcome(SessionState::Ended, Some(EndReason::DeviceEnded)),
            "The visitor ended the session"
        );
        assert_eq!(
            ticket_outcome(SessionState::Ended, Some(EndReason::ConsentDenied)),
            "The visitor denied the request"
        );
        assert_eq!(
            ticket_outcome(SessionState::Ended, None),
            "The session ended"
        );
        assert_eq!(ticket_outcome(SessionState::Active, None), "Active");
        assert_eq!(
            ticket_outcome(SessionState::Authorizing, None),
            "Waiting for consent"
        );
        assert_eq!(
            ticket_outcome(SessionState::Pending, None),
            "Waiting for an agent"
        );
        assert_eq!(ticket_agent(Some("Dana")), "Agent: Dana");
        assert_eq!(ticket_agent(None), "No agent");
    }

    #[test]
    fn the_mirror_says_live_only_when_the_visitors_page_is_there() {
        use MirrorLink::*;
        use MirrorPage::{Hidden, Shown};
        assert_eq!(mirror_status(Open, Shown, true), "Live");
        assert_eq!(
            mirror_status(Connecting, MirrorPage::None, true),
            "Waiting for the visitor's page\u{2026}"
        );
        assert_eq!(
            mirror_status(Open, MirrorPage::None, false),
            "Waiting for the visitor's page\u{2026}"
        );
        assert_eq!(
            mirror_status(Open, Hidden, true),
            "The visitor is on a page that is not shared"
        );
        assert_eq!(
            mirror_status(Open, Shown, false),
            "The visitor is changing page\u{2026}"
        );
        assert_eq!(mirror_status(Retrying, Shown, true), "Reconnecting\u{2026}");
        assert_eq!(mirror_status(Refused, Shown, true), say::MIRROR_REFUSED);
        assert!(!mirror_covered(Open, Shown));
        assert!(!mirror_covered(Retrying, Shown));
        assert!(mirror_covered(Open, Hidden));
        assert!(mirror_covered(Retrying, MirrorPage::None));
        assert!(mirror_covered(Elsewhere, Shown));
        assert!(mirror_covered(Closed, Shown));
    }

    #[test]
    fn the_avatar_shows_the_first_letter() {
        assert_eq!(initial("dana"), "D");
        assert_eq!(initial("  <b>"), "B");
        assert_eq!(initial("élodie"), "É");
        assert_eq!(initial("--"), "?");
    }
}
