//! The SDK's error type. Converted to a JS `Error` only at the wasm-bindgen
//! boundary, with a stable `code` property a page can branch on.

use agent_assist_protocol::ErrorCode;
use agent_assist_web::http::FetchError;
use wasm_bindgen::JsValue;

/// Not `thiserror`: its `Display` goes through the formatting machinery,
/// which the boot module would carry only for these messages; [`Error::message`]
/// builds them by concatenation instead.
#[derive(Clone, Debug)]
pub enum Error {
    /// The page gave `init` a bad config; the message names the field.
    Config(String),
    /// `fetch` failed: the broker is down, unreachable, or refused CORS.
    Network,
    /// The broker did not answer within the client's time limit.
    Timeout,
    /// The broker answered with an error. The message names the stable code,
    /// so the site's developer sees what to fix (e.g. `invalid_identity`).
    #[cfg(not(feature = "boot"))]
    Api { code: ErrorCode, message: String },
    /// The broker answered something that is not what the protocol says.
    BadResponse,
    /// An unexpected exception from a browser API.
    Js(String),
    /// The page has no DOM (server-side rendering, a worker).
    NoDocument,
    /// A method was called with an argument it cannot use; the message names
    /// the method and the field at fault.
    Argument { call: &'static str, message: String },
    /// The site identifies its visitors (`auth: "code"`) and has not called
    /// `identify()` yet, so there is nobody to make a code for.
    NotIdentified,
    /// The instance was destroyed and cannot be used any more.
    Destroyed,
    /// The widget was called back in the middle of one of its own updates
    /// (see `Widget::call`); never reaches the page.
    #[cfg(not(feature = "boot"))]
    Busy,
    /// `on`/`off` with an event name we never emit.
    UnknownEvent(String),
}

pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// What the page's developer reads: what went wrong and, where it helps,
    /// what to fix.
    pub fn message(&self) -> String {
        let text = |parts: &[&str]| parts.concat();
        match self {
            Error::Config(m) => text(&["Agent Assist config: ", m]),
            Error::Network => "Agent Assist could not reach its server".into(),
            Error::Timeout => "Agent Assist's server did not answer in time".into(),
            #[cfg(not(feature = "boot"))]
            Error::Api { code, message } => text(&[
                "Agent Assist's server answered ",
                code.as_str(),
                ": ",
                message,
            ]),
            Error::BadResponse => "Agent Assist's server sent an answer it could not read".into(),
            Error::Js(m) => text(&["Agent Assist: ", m]),
            Error::NoDocument => "Agent Assist needs a browser page (no document here)".into(),
            Error::Argument { call, message } => text(&["Agent Assist ", call, ": ", message]),
            Error::NotIdentified => "Agent Assist: this site identifies its visitors \
                (auth \"code\"); call identify() first"
                .into(),
            Error::Destroyed => "this Agent Assist instance was destroyed".into(),
            #[cfg(not(feature = "boot"))]
            Error::Busy => "Agent Assist was called in the middle of an update".into(),
            Error::UnknownEvent(event) => text(&[
                "Agent Assist: unknown event `",
                event,
                "` (known: code.created, code.expired, code.cancelled, session.updated, \
                 session.ended, error)",
            ]),
        }
    }

    /// The `error` event's detail: `{ code, message }`.
    pub fn detail(&self) -> JsValue {
        crate::events::object(&[
            ("code", self.code().into()),
            ("message", self.message().into()),
        ])
    }

    /// The stable code a page sees as `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Network => "network",
            Error::Timeout => "timeout",
            #[cfg(not(feature = "boot"))]
            Error::Api { code, .. } => code.as_str(),
            Error::BadResponse => "bad_response",
            Error::Js(_) => "browser",
            Error::NoDocument => "no_document",
            Error::Argument { .. } => "invalid_argument",
            Error::NotIdentified => "identity_required",
            Error::Destroyed => "destroyed",
            #[cfg(not(feature = "boot"))]
            Error::Busy => "busy",
            Error::UnknownEvent(_) => "unknown_event",
        }
    }

    /// True when trying again later may help (the visitor sees "Try again").
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network | Error::Timeout | Error::BadResponse => true,
            #[cfg(not(feature = "boot"))]
            Error::Api { code, .. } => code.status() >= 500,
            _ => false,
        }
    }
}

#[cfg(not(feature = "boot"))]
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
        let js = js_sys::Error::new(&err.message());
        // Setting a property on a fresh Error object cannot fail.
        let _ = js_sys::Reflect::set(&js, &"code".into(), &err.code().into());
        js.into()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Error {}
