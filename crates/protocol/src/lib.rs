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
//! - [`AuthMode`], [`Identity`], [`VisitorView`], [`Ticket`]: who the visitor
//!   is (seeds 002, 003) and what the agent sees of them.
//! - [`ApiError`], [`ErrorCode`]: the body of every non-2xx answer.
//! - [`mirror`]: the live mirror of the visitor's page (WebSocket frames).
//! - `schema` (feature `schema`): the string shapes and limits the broker
//!   enforces, for the JSON Schemas `schemars` derives from these types.
//!
//! Both sides use these types and nothing else on the wire. The crate depends
//! on `serde` only (no `serde_json`), so it adds little to the wasm bundle;
//! the `schema` feature, which pulls in `schemars`, is for the broker's
//! OpenAPI document and off for the SDK.
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

pub mod mirror;
#[cfg(feature = "schema")]
pub mod schema;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest value accepted for any free-text visitor field, in characters.
pub const MAX_TEXT_FIELD: usize = 200;
/// Most entries of a visitor's `custom_data`.
pub const MAX_CUSTOM_FIELDS: usize = 20;
/// Longest `custom_data` key, in characters (values follow [`MAX_TEXT_FIELD`]).
pub const MAX_CUSTOM_KEY: usize = 40;

/// How a site identifies its visitors (seed 003), set per site in the
/// broker's config and enforced by the broker. The widget is told the same
/// mode in its own config so that it can draw the right UI without asking
/// the broker before the visitor clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// No data asked; the visitor appears as "Web User - MM/DD HH:MM".
    Visitor,
    /// The site passes its logged-in user through `identify()`, signed by
    /// the site's server; the widget is hidden until it has.
    Code,
    /// Name and email are required before a code is made (unverified).
    Form,
    /// The same form, with "Continue as guest".
    OptionalForm,
}

/// `POST /v1/codes`: the visitor asks for a support code. What the visitor
/// typed (`visitor`) and a signed identity (`identity`) exclude each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("not" = { "required": ["visitor", "identity"] }))
)]
#[serde(deny_unknown_fields)]
pub struct CreateCodeRequest {
    /// The public key of the site the widget is embedded in.
    #[cfg_attr(feature = "schema", schemars(example = &"demo"))]
    pub site_key: String,
    /// What the visitor typed into the form (`form` / `optional-form`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor: Option<VisitorInfo>,
    /// The anonymous visitor id: 128 random bits as 32 lowercase hex,
    /// created by the widget on the visitor's first click and kept on the
    /// device, so the broker can tell a returning visitor and merge their
    /// earlier tickets once they log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::visitor_id"))]
    pub visitor_id: Option<String>,
    /// The logged-in user, as the site's server signed it (`code` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

/// A site's logged-in user (`identify()`), with the proof the site's server
/// made. The broker believes only what `token` signs: an HS256 JWT made with
/// the site's secret, claims `sub` (= `user_id`), `name`, `email`, optional
/// `custom` (an object of strings) and `exp` (at most 24 hours away). The
/// fields sent beside it must equal the signed ones, so nothing can be
/// changed in the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Identity {
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::user_id"))]
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::signed_text"))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::signed_email"))]
    pub email: Option<String>,
    /// Extra facts for the agent (plan, account number…): strings only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::custom_data"))]
    pub custom_data: Option<BTreeMap<String, String>>,
    pub token: String,
}

/// Visitor data sent along with a code request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct VisitorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::typed_text"))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::typed_email"))]
    pub email: Option<String>,
}

/// `201 Created` answer to `POST /v1/codes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CreateCodeResponse {
    /// Six ASCII digits, `000000`–`999999`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::code"))]
    pub code: String,
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::session_id"))]
    pub session_id: String,
    /// When the code stops being redeemable, in milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// Seconds from now until `expires_at`. The widget counts down from this
    /// rather than from `expires_at` so a wrong clock on the visitor's device
    /// does not distort the countdown.
    pub expires_in: u32,
    /// Bearer credential for later calls about this session (cancel, status).
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::device_token"))]
    pub device_token: String,
    /// A ticket for this session's event stream, so the widget can follow
    /// the session without another round trip.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::stream_ticket"))]
    pub stream_ticket: String,
}

/// Where a support session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionStatus {
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::session_id"))]
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

impl SessionState {
    /// The wire name (`"pending"`…), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Authorizing => "authorizing",
            SessionState::Active => "active",
            SessionState::Ended => "ended",
        }
    }

    /// The state with this wire name.
    pub fn from_name(name: &str) -> Option<SessionState> {
        [
            SessionState::Pending,
            SessionState::Authorizing,
            SessionState::Active,
            SessionState::Ended,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// How far along its life a session is: states only move forward, so a
    /// client that sees a lower rank than it knows is looking at old news.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

impl EndReason {
    const ALL: [EndReason; 6] = [
        EndReason::PendingTimeout,
        EndReason::AuthorizingTimeout,
        EndReason::DeviceCancelled,
        EndReason::ConsentDenied,
        EndReason::DeviceEnded,
        EndReason::AgentEnded,
    ];

    /// The wire name (`"agent_ended"`…), as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::PendingTimeout => "pending_timeout",
            EndReason::AuthorizingTimeout => "authorizing_timeout",
            EndReason::DeviceCancelled => "device_cancelled",
            EndReason::ConsentDenied => "consent_denied",
            EndReason::DeviceEnded => "device_ended",
            EndReason::AgentEnded => "agent_ended",
        }
    }

    /// The reason with this wire name.
    pub fn from_name(name: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

/// Name of the Server-Sent Event that carries a [`SessionStatus`].
pub const SESSION_EVENT: &str = "session";

/// An agent, as shown to the visitor and in the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentInfo {
    /// Unique within the agent's site.
    pub id: String,
    /// Display name, e.g. "Dana".
    pub name: String,
}

/// A site, as shown to its agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SiteInfo {
    pub key: String,
    pub name: String,
}

/// `GET /v1/agent/me`: who the presented agent credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentMe {
    pub agent: AgentInfo,
    pub site: SiteInfo,
}

/// `POST /v1/agent/redeem`: an agent enters the code the visitor read out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// Six ASCII digits; the console strips spaces and dashes first.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::code"))]
    pub code: String,
}

/// The visitor as the agent sees them. Text only: consoles must render it
/// as text, never as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VisitorView {
    /// The visitor's name if known, else `Web User - MM/DD HH:MM` (first
    /// contact, in the site's time zone).
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// How much of the above is proven.
    pub kind: IdentityKind,
    /// The site's own user id (verified visitors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<BTreeMap<String, String>>,
    /// Every support session of this visitor at this site, newest first,
    /// including ones merged from before they logged in.
    #[serde(default)]
    pub tickets: Vec<Ticket>,
}

/// How a visitor's identity is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// Nothing given: a "Web User".
    Anonymous,
    /// Typed into the form: unverified.
    Typed,
    /// Signed by the site's server.
    Verified,
}

/// One support session in a visitor's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Ticket {
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::session_id"))]
    pub session_id: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub state: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
}

/// `200` answer to `POST /v1/agent/redeem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RedeemResponse {
    pub session: SessionStatus,
    pub visitor: VisitorView,
    /// A ticket for the session's event stream.
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::stream_ticket"))]
    pub stream_ticket: String,
}

/// `POST /v1/sessions/{id}/consent`: the visitor's answer to the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub allow: bool,
}

/// `POST /v1/sessions/{id}/ticket`: a credential for the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StreamTicket {
    #[cfg_attr(feature = "schema", schemars(schema_with = "schema::stream_ticket"))]
    pub ticket: String,
    /// Seconds the ticket can be used to (re)connect.
    pub expires_in: u32,
}

/// Stable, machine-readable error codes. The HTTP status goes with each (see
/// [`ErrorCode::status`]); the accompanying message is for humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// 401: the site identifies its visitors (`code` mode) and the request
    /// has no identity.
    IdentityRequired,
    /// 401: the identity's token is missing, forged, expired, or does not
    /// match the fields sent beside it.
    InvalidIdentity,
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
    /// 408: the request (its body, or the work on it) took longer than the
    /// broker allows; send it again.
    RequestTimeout,
    /// 409: the session is in a state that does not allow this action.
    InvalidState,
    /// 503: every code of the site's code space is in use right now.
    NoFreeCodes,
    /// 503: this broker is shutting down; another replica (or this one,
    /// restarted) answers a retry.
    ShuttingDown,
    /// 503: the broker cannot reach its store (Redis is down or too slow);
    /// nothing was changed, and a retry shortly after may succeed.
    StoreUnavailable,
    /// 500: something went wrong inside the broker; the cause is in its log.
    Internal,
    /// An error code this version of the SDK does not know yet.
    // Never sent by the broker, so not in its schema.
    #[cfg_attr(feature = "schema", schemars(skip))]
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name (`"no_such_code"`…), as serde writes it; also the
    /// `code` the SDK's JS errors carry.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::IdentityRequired => "identity_required",
            ErrorCode::InvalidIdentity => "invalid_identity",
            ErrorCode::UnknownSite => "unknown_site",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NoSuchCode => "no_such_code",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::NoFreeCodes => "no_free_codes",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status that goes with this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidField => 400,
            ErrorCode::InvalidToken | ErrorCode::IdentityRequired | ErrorCode::InvalidIdentity => {
                401
            }
            ErrorCode::OriginNotAllowed => 403,
            ErrorCode::UnknownSite
            | ErrorCode::UnknownSession
            | ErrorCode::NotFound
            | ErrorCode::NoSuchCode => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::InvalidState => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited => 429,
            ErrorCode::NoFreeCodes | ErrorCode::ShuttingDown | ErrorCode::StoreUnavailable => 503,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }
}

/// The body of every non-2xx answer from the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// Longest code lifetime a site may set, in seconds (one day); the
/// broker's config refuses more.
pub const MAX_CODE_LIFETIME_SECS: u32 = 86_400;

/// Longest session id, device token or stream ticket a client accepts.
/// The broker's are 32 to 64 characters.
pub const MAX_CREDENTIAL_LEN: usize = 128;

/// True when `s` can be a session id, device token or stream ticket: short,
/// and safe in a URL path, a query and a header as it is.
pub fn is_credential(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CREDENTIAL_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl CreateCodeResponse {
    /// True when a client can show and use this answer: a six-digit code,
    /// a lifetime a site may have, and credentials [`is_credential`] takes.
    /// Anything else is not the broker speaking (a proxy, a captive portal,
    /// a bug) and is treated like an answer that does not parse.
    pub fn is_usable(&self) -> bool {
        is_valid_code(&self.code)
            && (1..=MAX_CODE_LIFETIME_SECS).contains(&self.expires_in)
            && [&self.session_id, &self.device_token, &self.stream_ticket]
                .iter()
                .all(|s| is_credential(s))
    }
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
    fn only_answers_a_client_can_use_are_usable() {
        let good = CreateCodeResponse {
            code: "123456".into(),
            session_id: "0123456789abcdef0123456789abcdef".into(),
            expires_at: 1,
            expires_in: 1200,
            device_token: "ab".repeat(32),
            stream_ticket: "cd".repeat(16),
        };
        assert!(good.is_usable());
        let with = |f: fn(&mut CreateCodeResponse)| {
            let mut r = good.clone();
            f(&mut r);
            r.is_usable()
        };
        assert!(!with(|r| r.code = "12ab56".into()));
        assert!(!with(|r| r.expires_in = 0));
        assert!(!with(|r| r.expires_in = u32::MAX));
        assert!(with(|r| r.expires_in = MAX_CODE_LIFETIME_SECS));
        assert!(!with(|r| r.session_id = String::new()));
        assert!(!with(|r| r.session_id = "f".repeat(MAX_CREDENTIAL_LEN + 1)));
        assert!(!with(|r| r.device_token = "a b".into()));
        assert!(!with(|r| r.stream_ticket = "x&last_event_id=9".into()));
    }

    #[test]
    fn wire_names_are_what_serde_writes() {
        let json = |v: serde_json::Value| v.as_str().map(str::to_owned);
        for s in [
            SessionState::Pending,
            SessionState::Authorizing,
            SessionState::Active,
            SessionState::Ended,
        ] {
            assert_eq!(
                json(serde_json::to_value(s).unwrap()).as_deref(),
                Some(s.as_str())
            );
            assert_eq!(SessionState::from_name(s.as_str()), Some(s));
        }
        for r in EndReason::ALL {
            assert_eq!(
                json(serde_json::to_value(r).unwrap()).as_deref(),
                Some(r.as_str())
            );
            assert_eq!(EndReason::from_name(r.as_str()), Some(r));
        }
        assert!(SessionState::Pending.rank() < SessionState::Authorizing.rank());
        assert!(SessionState::Active.rank() < SessionState::Ended.rank());
        assert_eq!(SessionState::from_name("paused"), None);
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
            ErrorCode::IdentityRequired,
            ErrorCode::InvalidIdentity,
            ErrorCode::UnknownSite,
            ErrorCode::UnknownSession,
            ErrorCode::NotFound,
            ErrorCode::NoSuchCode,
            ErrorCode::RateLimited,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RequestTimeout,
            ErrorCode::InvalidState,
            ErrorCode::NoFreeCodes,
            ErrorCode::ShuttingDown,
            ErrorCode::StoreUnavailable,
            ErrorCode::Internal,
        ] {
            assert!((400..600).contains(&code.status()), "{code:?}");
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire.as_str(), Some(code.as_str()));
        }
    }
}
