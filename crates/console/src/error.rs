//! The console's error type: what went wrong, in the terms the agent is told
//! about. Converted to a JS `Error` only at the `#[wasm_bindgen]` boundary.

use crate::text::{self, say};
use agent_assist_protocol::ErrorCode;
use agent_assist_web::http::FetchError;
use wasm_bindgen::JsValue;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The broker did not answer, or not in time.
    #[error("the broker cannot be reached")]
    Network,
    /// The agent credential is missing, wrong, expired or revoked.
    #[error("the agent credential was refused")]
    InvalidToken,
    /// The code is wrong, expired, cancelled, used or another site's.
    #[error("no live code matches")]
    NoSuchCode,
    /// Too many failed codes; the broker accepts none for `retry_after` seconds.
    #[error("too many wrong codes; retry in {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// Any other answer from the broker (its message is for the log).
    #[error("the broker answered {code:?}: {message}")]
    Api { code: ErrorCode, message: String },
    /// The broker's answer does not have the protocol's shape.
    #[error("the broker sent an answer the console cannot read")]
    BadResponse,
    /// A browser API threw unexpectedly.
    #[error("browser error: {0}")]
    Js(String),
    /// `start` was called where there is no page.
    #[error("the agent console needs a browser page")]
    NoDocument,
}

/// How long to wait when a 429 does not say, so the boxes still unlock.
const DEFAULT_RETRY_AFTER: u32 = 60;

impl From<FetchError> for Error {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::Network | FetchError::Timeout => Error::Network,
            FetchError::Api {
                code: ErrorCode::InvalidToken,
                ..
            } => Error::InvalidToken,
            FetchError::Api {
                code: ErrorCode::NoSuchCode,
                ..
            } => Error::NoSuchCode,
            FetchError::Api {
                code: ErrorCode::RateLimited,
                retry_after,
                ..
            } => Error::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
            },
            FetchError::Api { code, message, .. } => Error::Api { code, message },
            FetchError::BadResponse => Error::BadResponse,
            FetchError::Js(text) => Error::Js(text),
        }
    }
}

impl Error {
    /// The sentence the agent reads for an error that has no more specific
    /// handling where it happened.
    pub fn sentence(&self) -> String {
        match self {
            Error::Network => say::NETWORK.into(),
            Error::InvalidToken => say::SESSION_LOST.into(),
            Error::RateLimited { retry_after } => text::locked(*retry_after),
            Error::NoSuchCode
            | Error::Api { .. }
            | Error::BadResponse
            | Error::Js(_)
            | Error::NoDocument => say::SERVER.into(),
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
        js_sys::Error::new(&err.to_string()).into()
    }
}

pub type Result<T, E = Error> = core::result::Result<T, E>;
