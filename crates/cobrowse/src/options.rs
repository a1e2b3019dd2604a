//! `start`'s options, checked field by field: a mistake in the site's
//! config is reported to its developer when sharing starts, not silently
//! turned into a mirror that shows more than the site meant to.

use crate::error::{Error, Result};
use js_sys::{Array, Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Url};

pub struct Options {
    /// The session's mirror socket, `ws(s)://<broker>/v1/sessions/{id}/mirror`.
    pub socket_url: String,
    /// The session's device token, sent in the first frame (never in the URL).
    pub token: String,
    /// The site's selectors of elements to redact, each checked.
    pub redact: Vec<String>,
    /// The site's selectors of areas shown in private-by-default mode.
    pub unredact: Vec<String>,
    pub private_by_default: bool,
    pub on_state: Option<Function>,
}

impl Options {
    pub fn from_js(value: &JsValue, doc: &Document) -> Result<Options> {
        if !value.is_object() {
            return Err(bad("start(options) needs an options object"));
        }
        let broker = string(value, "broker")?;
        let session_id = string(value, "sessionId")?;
        let socket_url = socket_url(&broker, &session_id)
            .ok_or_else(|| bad("options.broker must be an http:// or https:// URL"))?;
        let on_state = match get(value, "onState") {
            v if v.is_undefined() || v.is_null() => None,
            v => Some(
                v.dyn_into::<Function>()
                    .map_err(|_| bad("options.onState must be a function"))?,
            ),
        };
        let private_by_default = match get(value, "privateByDefault") {
            v if v.is_undefined() || v.is_null() => false,
            v => v
                .as_bool()
                .ok_or_else(|| bad("options.privateByDefault must be true or false"))?,
        };
        Ok(Options {
            socket_url,
            token: string(value, "token")?,
            redact: selectors(value, "redact", doc)?,
            unredact: selectors(value, "unredact", doc)?,
            private_by_default,
            on_state,
        })
    }
}

fn bad(message: &str) -> Error {
    Error::Options(message.to_owned())
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn string(obj: &JsValue, key: &str) -> Result<String> {
    get(obj, key)
        .as_string()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::Options(["options.", key, " must be a non-empty string"].concat()))
}

/// A list of CSS selectors, each parsed by the browser now: an invalid one
/// would otherwise make every later redaction check throw.
fn selectors(obj: &JsValue, key: &str, doc: &Document) -> Result<Vec<String>> {
    let value = get(obj, key);
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    let not_a_list =
        || Error::Options(["options.", key, " must be an array of CSS selectors"].concat());
    let list = value.dyn_into::<Array>().map_err(|_| not_a_list())?;
    let mut out = Vec::new();
    for item in list.iter() {
        let selector = item.as_string().ok_or_else(not_a_list)?;
        let selector = selector.trim();
        // Each selector is joined into one list and into the outline
        // stylesheet, so it must stand on its own there.
        if !agent_assist_web::dom::is_selector(doc, selector) {
            return Err(Error::Options(
                [
                    "options.",
                    key,
                    ": `",
                    selector,
                    "` is not a valid CSS selector",
                ]
                .concat(),
            ));
        }
        out.push(selector.to_owned());
    }
    Ok(out)
}

/// The mirror socket's URL for session `session_id` on the broker at
/// `broker` (`http(s)://host[:port][/prefix]`): the same host and path
/// prefix over `ws(s)`, without the base URL's query or fragment.
pub fn socket_url(broker: &str, session_id: &str) -> Option<String> {
    let url = Url::new(broker).ok()?;
    let scheme = match url.protocol().as_str() {
        "https:" => "wss://",
        "http:" => "ws://",
        _ => return None,
    };
    let host = url.host();
    if host.is_empty() {
        return None;
    }
    let path = url.pathname();
    Some(
        [
            scheme,
            &host,
            path.trim_end_matches('/'),
            "/v1/sessions/",
            &encode(session_id),
            "/mirror",
        ]
        .concat(),
    )
}

/// Percent-encodes a URL path segment (the broker's ids are URL-safe
/// already; this keeps a surprising one from changing the path).
pub fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn session_ids_are_percent_encoded_in_the_path() {
        assert_eq!(encode("ses_AZ-09.~"), "ses_AZ-09.~");
        assert_eq!(encode("a/b c?d#é"), "a%2Fb%20c%3Fd%23%C3%A9");
    }
}
