//! The config a page passes to `AgentAssist.init`, checked field by field so
//! that every mistake is reported with the name of the field at fault.

use crate::error::{Error, Result};
use crate::i18n::{Strings, KEY_LIST, NOTICES_KEY};
use crate::visitor::Keep;
use agent_assist_protocol::AuthMode;
use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// Longest site key accepted; real keys are far shorter.
const MAX_SITE_KEY: usize = 200;
/// Most notices a modal shows; more would push the code out of view.
const MAX_NOTICES: u32 = 10;
const FIELDS: [&str; 12] = [
    "onConsent",
    "siteKey",
    "broker",
    "locale",
    "privacyUrl",
    "theme",
    "strings",
    "auth",
    "visitorStorage",
    "redact",
    "unredact",
    "privateByDefault",
];
/// [`FIELDS`] for messages, written out: splitting or joining at run time
/// would link a substring searcher and its panic path into the wasm.
const FIELD_LIST: &str =
    "onConsent, siteKey, broker, locale, privacyUrl, theme, strings, auth, visitorStorage, \
     redact, unredact, privateByDefault";
/// Most selectors in `redact` or `unredact`.
const MAX_SELECTORS: u32 = 100;

/// Light or dark appearance; `Auto` follows `prefers-color-scheme`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Auto,
    Light,
    Dark,
}

/// A checked config.
#[derive(Clone, Debug)]
pub struct Config {
    pub site_key: String,
    /// Base URL of the broker, without a trailing slash.
    pub broker: String,
    pub strings: Strings,
    pub privacy_url: Option<String>,
    pub theme: Theme,
    /// The site's own consent UI: called with `{ sessionId, agentName }`,
    /// returns (a promise of) `true` to allow.
    pub on_consent: Option<js_sys::Function>,
    /// How the site identifies its visitors; the broker enforces the same
    /// mode, the widget draws the UI that goes with it.
    pub auth: AuthMode,
    /// Where the anonymous visitor id is kept.
    pub visitor_storage: Keep,
    /// Co-browsing: CSS selectors of elements hidden from the agent (with
    /// everything inside), on top of passwords and `data-agent-assist-redact`.
    pub redact: Array,
    /// Co-browsing, with `private_by_default`: the areas the agent may see.
    pub unredact: Array,
    /// Co-browsing: hide every text, field and image from the agent except
    /// in areas marked `data-agent-assist-unredact` or listed in `unredact`.
    pub private_by_default: bool,
}

impl Config {
    /// Checks a JS config object against this page: its URL and language.
    pub fn from_page(value: &JsValue) -> Result<Config> {
        let window = web_sys::window().ok_or(Error::NoDocument)?;
        let page_url = window.location().href().map_err(Error::from)?;
        let language = window.navigator().language().unwrap_or_default();
        Config::from_js(value, &page_url, &language)
    }

    /// Checks a JS config object. `page_url` resolves relative URLs and is the
    /// default broker origin; `default_locale` is `navigator.language`.
    pub fn from_js(value: &JsValue, page_url: &str, default_locale: &str) -> Result<Config> {
        let obj: &Object = value
            .dyn_ref::<Object>()
            .filter(|_| !value.is_function() && !Array::is_array(value))
            .ok_or_else(|| bad("expected an object such as { siteKey: \"…\" }"))?;
        for key in Object::keys(obj).iter() {
            let key = key.as_string().unwrap_or_default();
            if !FIELDS.contains(&key.as_str()) {
                return Err(bad(&[
                    "unknown field `",
                    &key,
                    "` (known fields: ",
                    FIELD_LIST,
                    ")",
                ]
                .concat()));
            }
        }

        let site_key = string_field(obj, "siteKey")?.ok_or_else(|| bad("`siteKey` is required"))?;
        if site_key.is_empty()
            || site_key.len() > MAX_SITE_KEY
            || site_key
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("`siteKey` must be a non-empty key without spaces"));
        }

        let broker = match string_field(obj, "broker")? {
            Some(b) => http_url(&b, page_url, "broker")?,
            None => origin_of(page_url).ok_or_else(|| bad("`broker` is required here"))?,
        };
        let broker = broker.trim_end_matches('/').to_owned();

        let locale = string_field(obj, "locale")?.unwrap_or_else(|| default_locale.to_owned());
        let mut strings = Strings::for_locale(&locale);
        let overrides = get(obj, "strings")?;
        if !overrides.is_undefined() {
            apply_overrides(&mut strings, &overrides)?;
        }

        let privacy_url = match string_field(obj, "privacyUrl")? {
            Some(u) => Some(http_url(&u, page_url, "privacyUrl")?),
            None => None,
        };

        let theme = choice(
            obj,
            "theme",
            &[
                ("auto", Theme::Auto),
                ("light", Theme::Light),
                ("dark", Theme::Dark),
            ],
            "`theme` must be \"auto\", \"light\" or \"dark\"",
        )?
        .unwrap_or(Theme::Auto);

        let on_consent = get(obj, "onConsent")?;
        let on_consent = if on_consent.is_undefined() || on_consent.is_null() {
            None
        } else {
            Some(
                on_consent
                    .dyn_into::<js_sys::Function>()
                    .map_err(|_| bad("`onConsent` must be a function"))?,
            )
        };

        let auth = choice(
            obj,
            "auth",
            &[
                ("visitor", AuthMode::Visitor),
                ("code", AuthMode::Code),
                ("form", AuthMode::Form),
                ("optional-form", AuthMode::OptionalForm),
            ],
            "`auth` must be \"visitor\", \"code\", \"form\" or \"optional-form\"",
        )?
        .unwrap_or(AuthMode::Visitor);

        let visitor_storage = choice(
            obj,
            "visitorStorage",
            &[
                ("local", Keep::Local),
                ("session", Keep::Session),
                ("memory", Keep::Memory),
            ],
            "`visitorStorage` must be \"local\", \"session\" or \"memory\"",
        )?
        .unwrap_or(Keep::Local);

        let redact = selectors(obj, "redact")?;
        let unredact = selectors(obj, "unredact")?;
        let private_by_default = match get(obj, "privateByDefault")? {
            v if v.is_undefined() || v.is_null() => false,
            v => v
                .as_bool()
                .ok_or_else(|| bad("`privateByDefault` must be true or false"))?,
        };

        Ok(Config {
            redact,
            unredact,
            private_by_default,
            on_consent,
            auth,
            visitor_storage,
            site_key,
            broker,
            strings,
            privacy_url,
            theme,
        })
    }
}

fn bad(msg: &str) -> Error {
    Error::Config(msg.to_owned())
}

fn get(obj: &Object, key: &str) -> Result<JsValue> {
    // Reading a property fails only on a throwing getter; report it as config.
    Reflect::get(obj, &JsValue::from_str(key))
        .map_err(|_| bad(&["`", key, "` could not be read"].concat()))
}

/// A string field; `undefined`/`null` are "not given", any other type is an error.
fn string_field(obj: &Object, key: &str) -> Result<Option<String>> {
    let v = get(obj, key)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| bad(&["`", key, "` must be a string"].concat()))
}

/// A list of CSS selectors, each checked against the page's own parser so a
/// typo is reported now rather than leaving a field visible to agents.
fn selectors(obj: &Object, key: &str) -> Result<Array> {
    let v = get(obj, key)?;
    if v.is_undefined() || v.is_null() {
        return Ok(Array::new());
    }
    let message = ["`", key, "` must be a list of CSS selectors"].concat();
    let list = v.dyn_into::<Array>().map_err(|_| bad(&message))?;
    if list.length() > MAX_SELECTORS {
        return Err(bad(&["`", key, "` has more than 100 selectors"].concat()));
    }
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or(Error::NoDocument)?;
    for item in list.iter() {
        let selector = item.as_string().ok_or_else(|| bad(&message))?;
        if !agent_assist_web::dom::is_selector(&doc, &selector) {
            return Err(bad(&[
                "`",
                key,
                "`: `",
                &selector,
                "` is not a valid CSS selector",
            ]
            .concat()));
        }
    }
    Ok(list)
}

/// A field that takes one of a few strings; `None` when not given.
fn choice<T: Copy>(
    obj: &Object,
    key: &str,
    options: &[(&str, T)],
    message: &str,
) -> Result<Option<T>> {
    let Some(given) = string_field(obj, key)? else {
        return Ok(None);
    };
    options
        .iter()
        .find(|(name, _)| *name == given)
        .map(|(_, value)| Some(*value))
        .ok_or_else(|| bad(message))
}

/// Resolves `url` against the page and requires http(s).
fn http_url(url: &str, page_url: &str, field: &str) -> Result<String> {
    let parsed = web_sys::Url::new_with_base(url, page_url)
        .map_err(|_| bad(&["`", field, "` is not a valid URL: ", url].concat()))?;
    let protocol = parsed.protocol();
    if protocol != "https:" && protocol != "http:" {
        return Err(bad(&["`", field, "` must be an http(s) URL"].concat()));
    }
    Ok(parsed.href())
}

fn origin_of(page_url: &str) -> Option<String> {
    let url = web_sys::Url::new(page_url).ok()?;
    let origin = url.origin();
    (origin.starts_with("http")).then_some(origin)
}

fn apply_overrides(strings: &mut Strings, overrides: &JsValue) -> Result<()> {
    let obj = overrides
        .dyn_ref::<Object>()
        .filter(|_| !Array::is_array(overrides))
        .ok_or_else(|| bad("`strings` must be an object of texts"))?;
    for key in Object::keys(obj).iter() {
        let key = key.as_string().unwrap_or_default();
        let value = get(obj, &key)?;
        if key == NOTICES_KEY {
            strings.notices = notices(&value)?;
            continue;
        }
        let text = value
            .as_string()
            .ok_or_else(|| bad(&["`strings.", &key, "` must be a string"].concat()))?;
        if !strings.set(&key, text) {
            return Err(bad(&[
                "unknown text `strings.",
                &key,
                "` (known: ",
                KEY_LIST,
                ", notices)",
            ]
            .concat()));
        }
    }
    Ok(())
}

fn notices(value: &JsValue) -> Result<Vec<String>> {
    let list = value
        .dyn_ref::<Array>()
        .filter(|a| a.length() <= MAX_NOTICES)
        .ok_or_else(|| bad("`strings.notices` must be an array of at most 10 strings"))?;
    list.iter()
        .map(|v| {
            v.as_string()
                .ok_or_else(|| bad("`strings.notices` must contain only strings"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_field_list_in_messages_names_every_accepted_field() {
        assert_eq!(super::FIELD_LIST, super::FIELDS.join(", "));
    }
}
