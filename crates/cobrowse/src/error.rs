//! The module's error type. Only `start` can fail, and only before anything
//! is observed or sent; it becomes a JS `Error` at the wasm-bindgen boundary.

use wasm_bindgen::JsValue;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// `start` was given options it cannot use; the message names the field.
    #[error("Agent Assist co-browsing: {0}")]
    Options(String),
    /// The module runs without a DOM (a worker, server-side rendering).
    #[error("Agent Assist co-browsing needs a browser page (no document here)")]
    NoDocument,
    /// An unexpected exception from a browser API.
    #[error("Agent Assist co-browsing: {0}")]
    Js(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

impl From<JsValue> for Error {
    fn from(value: JsValue) -> Self {
        Error::Js(agent_assist_web::js_message(&value))
    }
}

impl From<Error> for JsValue {
    fn from(err: Error) -> Self {
        js_sys::Error::new(&err.to_string()).into()
    }
}
