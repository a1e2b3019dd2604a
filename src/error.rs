//! The SDK's error type. Converted to a JS `Error` only at the wasm-bindgen
//! boundary, with a stable `code` property a page can branch on.

use agent_assist_protocol::ErrorCode;
use agent_assist_web::http::FetchError;
use wasm_bindgen::JsValue;

#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The page gave `init` a bad config; the message names the field.
    #[error("Agent Assist config: {0}")]
    Config(String),
    /// `fetch` failed: the broker is down, unreachable, or refused CORS.
    #[error("Agent Assist could not reach its server")]
    Network,
    /// The broker did not answer within the client's time limit.
    #[error("Agent Assist's server did not answer in time")]
    Timeout,
    /// The broker answered with an error. The message names the stable code,
    /// so the site's developer sees what to fix (e.g. `invalid_identity`).
    #[error("Agent Assist's server answered {}: {message}", .code.as_str())]
    Api { code: ErrorCode, message: String },
    /// The broker answered something that is not what the protocol says.
    #[error("Agent Assist's server sent an answer it could not read")]
    BadResponse,
    /// An unexpected exception from a browser API.
    #[error("Agent Assist: {0}")]
    Js(String),
    /// The page has no DOM (server-side rendering, a worker).
    #[error("Agent Assist needs a browser page (no document here)")]
    NoDocument,
    /// A method was called with an argument it cannot use; the message names
    /// the method and the field at fault.
    #[error("Agent Assist {call}: {message}")]
    Argument { call: &'static str, message: String },
    /// The site identifies its visitors (`auth: "code"`) and has not called
    /// `identify()` yet, so there is nobody to make a code for.
    #[error(
        "Agent Assist: this site identifies its visitors (auth \"code\"); call identify() first"
    )]
    NotIdentified,
    /// The instance was destroyed and cannot be used any more.
    #[error("this Agent Assist instance was destroyed")]
    Destroyed,
    /// `on`/`off` with an event name we never emit.
    #[error("Agent Assist: unknown event `{0}` (known: code.created, code.expired, code.cancelled, session.updated, session.ended, error)")]
    UnknownEvent(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The stable code a page sees as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Network => "network",
            Error::Timeout => "timeout",
            Error::Api { code, .. } => code.as_str(),
            Error::BadResponse => "bad_response",
            Error::Js(_) => "browser",
            Error::NoDocument => "no_document",
            Error::Argument { .. } => "invalid_argument",
            Error::NotIdentified => "identity_required",
            Error::Destroyed => "destroyed",
            Error::UnknownEvent(_) => "unknown_event",
        }
    }

    /// True when trying again later may help (the visitor sees "Try again").
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network | Error::Timeout | Error::BadResponse => true,
            Error::Api { code, .. } => code.status() >= 500,
            _ => false,
        }
    }
}

impl From<FetchError> for Error {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::Network => Error::Network,
            FetchError::Timeout => Error::Timeout,
            FetchError::Api { code, message, .. } => Error::Api { code, message },
            FetchError::BadResponse => Error::BadResponse,
            FetchError::Js(text) => Error::Js(text),
        }
    }
}

impl From<JsValue> for Error {
    fn from(value: JsValue) -> Self {
        let text = agent_assist_web::js_message(&value);
        Error::Js(text)
    }
}

impl From<Error> for JsValue {
    fn from(err: Error) -> Self {
        let js = js_sys::Error::new(&err.to_string());
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&js, &"code".into(), &err.code().into());
        js.into()
    }
}
