//! The one error type of the HTTP layer, and how it becomes an answer.
//!
//! Every non-2xx answer is an [`ApiError`] body whose status comes from
//! [`ErrorCode::status`], so the widget can branch on a stable `error` code
//! whatever went wrong. 4xx answers carry a message for the developer
//! integrating the widget; 5xx answers say only "internal error" and the cause
//! goes to the log, since it may describe the broker's insides.

use agent_assist_protocol::{ApiError, ErrorCode};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::store::StoreError;

/// `Result` with [`AppError`] as the default error.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// An answer that is not a success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request was refused; `message` says why, for a human.
    #[error("{code:?}: {message}")]
    Refused { code: ErrorCode, message: String },
    /// Too many attempts (`rate_limited`); a retry can succeed after
    /// `retry_after` seconds, which the answer says in its body and in the
    /// `Retry-After` header.
    #[error("rate limited for {retry_after} s: {message}")]
    Limited { retry_after: u32, message: String },
    /// The broker failed; the client is told nothing more.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Marks an answer that refused the request's `Origin`, so the CORS layer
/// does not add `Access-Control-Allow-Origin` to it.
#[derive(Debug, Clone, Copy)]
pub struct OriginRefused;

impl AppError {
    /// A refusal with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn unknown_session() -> Self {
        Self::new(ErrorCode::UnknownSession, "no session has this id")
    }

    pub fn invalid_token() -> Self {
        Self::new(
            ErrorCode::InvalidToken,
            "missing or wrong `Authorization: Bearer <device_token>` for this session",
        )
    }

    /// 401 `invalid_token` for an agent credential; `why` says what was
    /// wrong with it (expired, bad signature, revoked, …), never what it was.
    pub fn invalid_agent_token(why: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::InvalidToken,
            format!("agent credential refused: {why}"),
        )
    }

    /// The one answer for a code that cannot be redeemed, whatever the
    /// reason, so that a guesser learns nothing from it.
    pub fn no_such_code() -> Self {
        Self::new(
            ErrorCode::NoSuchCode,
            "no such code: it is wrong, expired, cancelled or already used",
        )
    }

    /// 429 `rate_limited` for `retry_after` seconds.
    pub fn rate_limited(retry_after: u32) -> Self {
        Self::Limited {
            retry_after,
            message: format!(
                "too many wrong codes; redeeming is locked for {retry_after} more seconds"
            ),
        }
    }

    /// 409 `invalid_state` with `message`.
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidState, message)
    }
    pub fn origin_not_allowed(origin: &str) -> Self {
        Self::new(
            ErrorCode::OriginNotAllowed,
            format!("origin {origin:?} is not allowed for this site"),
        )
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "this route does not accept this method",
        )
    }

    /// The stable code this error answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::Refused { code, .. } => *code,
            AppError::Limited { .. } => ErrorCode::RateLimited,
            AppError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                // Logged once per request, as a warning: the broker itself
                // is fine and recovers when the store is back.
                tracing::warn!(%cause, "store unavailable");
                Self::new(
                    ErrorCode::StoreUnavailable,
                    "the broker cannot reach its store right now; nothing was changed, try again shortly",
                )
            }
            e => Self::Internal(Box::new(e)),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let code = self.code();
        let (message, retry_after) = match self {
            AppError::Refused { message, .. } => (message, None),
            AppError::Limited {
                message,
                retry_after,
            } => (message, Some(retry_after)),
            AppError::Internal(cause) => {
                tracing::error!(error = %cause, source = ?cause.source(), "request failed");
                ("internal error".to_owned(), None)
            }
        };
        let status =
            StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(ApiError {
                error: code,
                message,
                retry_after,
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == ErrorCode::OriginNotAllowed {
            response.extensions_mut().insert(OriginRefused);
        }
        response
    }
}

/// The answer for a path no route has.
pub async fn not_found() -> AppError {
    AppError::not_found()
}

/// The answer for a route asked with a method it does not have.
pub async fn method_not_allowed() -> AppError {
    AppError::method_not_allowed()
}
