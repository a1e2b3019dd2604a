//! Browser plumbing shared by the Agent Assist wasm modules (the visitor's
//! widget and the agent console), so each stays small and neither repeats
//! the other.
//!
//! # Layout
//! - [`dom`]: element helpers and [`dom::Listener`], an event listener that
//!   removes itself when dropped ([`dom::CaptureListener`]: the same in the
//!   capture phase and passive, for watching the page's own events).
//! - [`http`]: `fetch` calls to the broker with the protocol's types, a time
//!   limit, and the broker's JSON errors as [`http::FetchError`].
//! - [`js_de`]: a serde deserializer over `JsValue` that formats no messages
//!   (keeps float formatting out of the wasm).
//! - [`json`]: a serde serializer writing the same compact JSON as
//!   `serde_json`, without linking it (the co-browsing frames).

pub mod dom;
pub mod http;
pub mod js_de;
pub mod json;

/// The message of a thrown JS value: an `Error`'s `message`, a thrown
/// string, or a generic sentence for anything else.
pub fn js_message(value: &wasm_bindgen::JsValue) -> String {
    js_sys::Reflect::get(value, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| value.as_string())
        .unwrap_or_else(|| "unexpected browser error".into())
}
