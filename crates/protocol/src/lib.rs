//! The contract between the Agent Assist SDK (in the browser) and the broker.
//!
//! # Layout
//! - [`CreateCodeRequest`] / [`CreateCodeResponse`]: `POST /v1/codes`.
//! - [`SessionStatus`], [`SessionState`], [`EndReason`]: `GET /v1/sessions/{id}`
//!   and the answer to `POST /v1/sessions/{id}/cancel`.
//! - [`RedeemRequest`] / [`RedeemResponse`]: `POST /v1/agent/redeem` (agent).
//! - [`ConsentRequest`]: `POST /v1/sessions/{id}/consent` (device).
//! - `POST /v1/sessions/{id}/end` (device or agent) answers a [`SessionStatus`].
//! - [`StreamTicket`]: `POST /v1/sessions/{id}/ticket` (device or agent), the
//!   credential for `GET /v1/sessions/{id}/events?ticket=…`, a Server-Sent
//!   Events stream of [`SessionStatus`] (event name [`SESSION_EVENT`]).
//! - [`AgentMe`]: `GET /v1/agent/me`, who an agent credential belongs to.
//! - [`ApiError`], [`ErrorCode`]: the body of every non-2xx answer.
//!
//! Both sides use these types and nothing else on the wire. The crate depends
//! on `serde` only (no `serde_json`), so it adds little to the wasm bundle.
//!
//! Authentication of the device: the answer to `POST /v1/codes` carries a
//! `device_token`; later calls about that session send it as
//! `Authorization: Bearer <device_token>`.
//!
//! Authentication of an agent: `Authorization: Bearer <credential>`, where the
//! credential is either an agent API token issued by the broker's CLI or an
//! HS256 JWT signed with the site's secret (claims `sub`, `name`, `site`, `exp`).
//!
//! Event streams: `EventSource` cannot send headers, so a stream is opened
//! with a short-lived ticket in the URL instead of the token itself. A ticket
//! only reads one session's events; tokens never appear in URLs or logs.

use serde::{Deserialize, Serialize};

/// Longest value accepted for any free-text visitor field, in characters.
pub const MAX_TEXT_FIELD: usize = 200;

/// `POST /v1/codes`: the visitor asks for a support code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCodeRequest {
    /// The public key of the site the widget is embedded in.
    pub site_key: String,
    /// What the visitor told us about themselves, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<VisitorInfo>,
}

/// Visitor data sent along with a code request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `201 Created` answer to `POST /v1/codes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCodeResponse {
    /// Six ASCII digits, `000000`–`999999`.
    pub code: String,
    pub session_id: String,
    /// When the code stops being redeemable, in milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// Seconds from now until `expires_at`. The widget counts down from this
    /// rather than from `expires_at` so a wrong clock on the visitor's device
    /// does not distort the countdown.
    pub expires_in: u32,
    /// Bearer credential for later calls about this session (cancel, status).
    pub device_token: String,
    /// A ticket for this session's event stream, so the widget can follow
    /// the session without another round trip.
    pub stream_ticket: String,
}

/// Where a support session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// A code was issued and waits for an agent.
    Pending,
    /// An agent redeemed the code; the visitor is being asked for consent.
    Authorizing,
    /// The visitor allowed the agent in.
    Active,
    /// Over; see [`EndReason`].
    Ended,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The code expired before an agent redeemed it.
    PendingTimeout,
    /// The visitor did not answer the consent prompt in time.
    AuthorizingTimeout,
    /// The visitor cancelled the code (Cancel, Esc, close).
    DeviceCancelled,
    /// The visitor denied consent.
    ConsentDenied,
    /// The visitor ended an active session.
    DeviceEnded,
    /// The agent ended the session.
    AgentEnded,
}

/// A session as both sides see it: the answer of `GET /v1/sessions/{id}`,
/// of every state change (cancel, consent, end) and each event of the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub session_id: String,
    pub state: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    /// Code expiry, milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// The agent who redeemed the code, from `authorizing` on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// While `authorizing`: when the consent prompt times out (ms since epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_expires_at: Option<u64>,
}

/// Name of the Server-Sent Event that carries a [`SessionStatus`].
pub const SESSION_EVENT: &str = "session";

/// An agent, as shown to the visitor and in the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Unique within the agent's site.
    pub id: String,
    /// Display name, e.g. "Dana".
    pub name: String,
}

/// A site, as shown to its agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub key: String,
    pub name: String,
}

/// `GET /v1/agent/me`: who the presented agent credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMe {
    pub agent: AgentInfo,
    pub site: SiteInfo,
}

/// `POST /v1/agent/redeem`: an agent enters the code the visitor read out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// Six ASCII digits; the console strips spaces and dashes first.
    pub code: String,
}

/// The visitor as the agent sees them. Text only: consoles must render it
/// as text, never as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorView {
    /// The visitor's name if they gave one, else `Web User - MM/DD HH:MM`.
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `200` answer to `POST /v1/agent/redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeemResponse {
    pub session: SessionStatus,
    pub visitor: VisitorView,
    /// A ticket for the session's event stream.
    pub stream_ticket: String,
}

/// `POST /v1/sessions/{id}/consent`: the visitor's answer to the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub allow: bool,
}

/// `POST /v1/sessions/{id}/ticket`: a credential for the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicket {
    pub ticket: String,
    /// Seconds the ticket can be used to (re)connect.
    pub expires_in: u32,
}

/// Stable, machine-readable error codes. The HTTP status goes with each (see
/// [`ErrorCode::status`]); the accompanying message is for humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not valid JSON or does not have the expected shape.
    MalformedJson,
    /// 400: a field has a value outside what is allowed (too long, wrong form).
    InvalidField,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 413: the body is larger than the broker accepts.
    PayloadTooLarge,
    /// 401: no, malformed or wrong bearer token.
    InvalidToken,
    /// 403: the request's `Origin` is not one of the site's allowed origins.
    OriginNotAllowed,
    /// 404: no site has this key.
    UnknownSite,
    /// 404: no session has this id.
    UnknownSession,
    /// 404: no such route.
    NotFound,
    /// 404: the agent's code is wrong, expired, cancelled, used, or another
    /// site's: one answer for all, so a guesser learns nothing.
    NoSuchCode,
    /// 429: too many attempts; `retry_after` says when to try again.
    RateLimited,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the session is in a state that does not allow this action.
    InvalidState,
    /// 503: every code of the site's code space is in use right now.
    NoFreeCodes,
    /// 500: something went wrong inside the broker; the cause is in its log.
    Internal,
    /// An error code this version of the SDK does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status that goes with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidField => 400,
            ErrorCode::InvalidToken => 401,
            ErrorCode::OriginNotAllowed => 403,
            ErrorCode::UnknownSite
            | ErrorCode::UnknownSession
            | ErrorCode::NotFound
            | ErrorCode::NoSuchCode => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::InvalidState => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::NoFreeCodes => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }
}

/// The body of every non-2xx answer from the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ErrorCode,
    pub message: String,
    /// With `rate_limited`: seconds until a retry can succeed (also sent as
    /// the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

/// True when `code` is exactly six ASCII digits.
pub fn is_valid_code(code: &str) -> bool {
    code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes_are_six_ascii_digits() {
        assert!(is_valid_code("000000"));
        assert!(is_valid_code("123456"));
        assert!(!is_valid_code("12345"));
        assert!(!is_valid_code("1234567"));
        assert!(!is_valid_code("12345a"));
        assert!(!is_valid_code("１２３４５６"));
    }

    #[test]
    fn every_error_code_maps_to_an_error_status() {
        for code in [
            ErrorCode::MalformedJson,
            ErrorCode::InvalidField,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::PayloadTooLarge,
            ErrorCode::InvalidToken,
            ErrorCode::OriginNotAllowed,
            ErrorCode::UnknownSite,
            ErrorCode::UnknownSession,
            ErrorCode::NotFound,
            ErrorCode::NoSuchCode,
            ErrorCode::RateLimited,
            ErrorCode::MethodNotAllowed,
            ErrorCode::InvalidState,
            ErrorCode::NoFreeCodes,
            ErrorCode::Internal,
        ] {
            assert!((400..600).contains(&code.status()), "{code:?}");
        }
    }
}
