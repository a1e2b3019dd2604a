//! What the routes take from a request: a JSON body, a bearer credential,
//! the browser's `Origin`, all refused with an [`AppError`] so that even a
//! malformed request gets a JSON answer with a stable error code. (Agent
//! credentials are checked in [`crate::auth`].)

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use agent_assist_protocol::ErrorCode;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Site;
use crate::error::{AppError, Result};
use crate::secrets::is_device_token;
use crate::AppState;

/// Largest request body accepted, in bytes. A code request is a few hundred
/// bytes; anything near this is not from the widget.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// `axum::Json`, but refusing with [`AppError`]: 400 `malformed_json` for bad
/// syntax, a wrong shape or unknown fields (the message names the field,
/// e.g. `identity.custom_data.orders: invalid type: integer…`), 415
/// `unsupported_media_type` without `Content-Type: application/json`, 413
/// `payload_too_large` over [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        // Parsed in two steps because serde lets a struct be written as a
        // JSON array (`["demo"]` would be a valid `CreateCodeRequest`, and
        // `"visitor": [null, null]` a valid `VisitorInfo`); the API's bodies
        // are objects with no lists in them (the OpenAPI document's tests
        // check that no request schema has an array), so any array is the
        // wrong shape.
        let Json(value) = Json::<Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(AppError::new(
                ErrorCode::MalformedJson,
                "the body must be a JSON object",
            ));
        }
        let parsed = serde_path_to_error::deserialize(&value)
            .map_err(|e| AppError::new(ErrorCode::MalformedJson, format!("invalid body: {e}")))?;
        // Checked after serde, whose messages say best what a field should
        // be; what is left is an array serde took for a struct.
        if let Some(path) = array_path(&value) {
            return Err(AppError::new(
                ErrorCode::MalformedJson,
                format!("invalid body: {path}: an array, where this API takes an object"),
            ));
        }
        Ok(Self(parsed))
    }
}

/// Where `value` holds an array (`identity.custom_data`), if it does.
/// serde_json refuses nesting over 128 levels, so the recursion is bounded.
fn array_path(value: &Value) -> Option<String> {
    match value {
        Value::Array(_) => Some(String::new()),
        Value::Object(fields) => fields.iter().find_map(|(name, v)| {
            array_path(v).map(|rest| match rest.is_empty() {
                true => name.clone(),
                false => format!("{name}.{rest}"),
            })
        }),
        _ => None,
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        // Going by the status rather than the variant keeps this right for
        // rejections axum may add later (the enum is non-exhaustive).
        let code = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::MalformedJson,
        };
        let message = match code {
            ErrorCode::PayloadTooLarge => {
                format!("the body is larger than {MAX_BODY_BYTES} bytes")
            }
            ErrorCode::UnsupportedMediaType => {
                "the body must be JSON with `Content-Type: application/json`".to_owned()
            }
            _ => rejection.body_text(),
        };
        AppError::new(code, message)
    }
}

/// The network address a request came from: the peer of the connection,
/// or, behind a proxy the operator named (`serve --client-ip-header`), the
/// last address in that header (the one the proxy itself added; earlier
/// entries come from the client and prove nothing). `None` when neither is
/// known, e.g. for an application called in process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(name) = &state.client_ip_header {
            let last = parts
                .headers
                .get_all(name)
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| parse_ip(v.trim()));
            return Ok(Self(last));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(Self(peer))
    }
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, or
/// either with a port (`203.0.113.7:5123`, `[2001:db8::1]:5123`).
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

impl ClientAddress {
    /// What the creation limits count: an IPv4 address as is, an IPv6
    /// address by its /64 (one machine or home is usually given a whole
    /// /64, so counting single addresses would count nothing).
    pub fn key(&self) -> Option<String> {
        Some(match self.0? {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        })
    }
}

/// The credential from `Authorization: Bearer <credential>`, whatever its
/// kind; `None` when the header is missing or not a bearer credential.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The device token from `Authorization: Bearer <token>`; 401 `invalid_token`
/// when it is missing or cannot be a token.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str> {
    bearer(headers)
        .filter(|t| is_device_token(t))
        .ok_or_else(AppError::invalid_token)
}

/// Refuses (403 `origin_not_allowed`) a browser request whose `Origin` is not
/// one of `site`'s allowed origins. Requests without `Origin` come from
/// servers and tools, not from another site's page, and pass.
///
/// `site` is `None` when the session's site has since been removed from the
/// configuration: then no browser origin is allowed.
pub fn check_origin(headers: &HeaderMap, site: Option<&Site>) -> Result<()> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    match origin.to_str() {
        Ok(origin) if site.is_some_and(|s| s.allows_origin(origin)) => Ok(()),
        Ok(origin) => Err(AppError::origin_not_allowed(origin)),
        Err(_) => Err(AppError::origin_not_allowed("(not ASCII)")),
    }
}

/// [`check_origin`] for requests with an agent credential, which may also
/// come from the broker's own pages (the agent console it serves): a page
/// whose `Origin` is the host the request was sent to passes too. Browsers
/// send `Origin` even on same-origin `POST`s, and the broker does not know
/// its public address, so it compares with `Host`.
pub fn check_agent_origin(headers: &HeaderMap, site: Option<&Site>) -> Result<()> {
    if from_same_host(headers) {
        return Ok(());
    }
    check_origin(headers, site)
}

/// True when the request has an `Origin` and it is the host the request was
/// sent to (`Host`): a page the broker itself served.
pub fn from_same_host(headers: &HeaderMap) -> bool {
    match (headers.get(ORIGIN), headers.get(HOST)) {
        (Some(origin), Some(host)) => match (origin.to_str(), host.to_str()) {
            (Ok(origin), Ok(host)) => origin
                .split_once("://")
                .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn addresses_are_counted_by_host_or_by_64() {
        let key = |ip: &str| ClientAddress(Some(ip.parse().unwrap())).key().unwrap();
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(ClientAddress(None).key(), None);
        assert_eq!(
            parse_ip("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_ip("203.0.113.7:80"),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(parse_ip("unknown"), None);
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn bearer_tokens_are_read_and_checked_for_shape() {
        let token = "ab".repeat(32);
        assert_eq!(
            bearer_token(&with_auth(&format!("Bearer {token}"))).unwrap(),
            token
        );
        assert_eq!(
            bearer_token(&with_auth(&format!("bearer  {token} "))).unwrap(),
            token
        );
        for bad in [
            format!("Basic {token}"),
            format!("Bearer{token}"),
            "Bearer abc".to_owned(),
            format!("Bearer {}", token.to_uppercase()),
            String::new(),
        ] {
            let e = bearer_token(&with_auth(&bad)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidToken, "{bad}");
        }
        assert_eq!(
            bearer_token(&HeaderMap::new()).unwrap_err().code(),
            ErrorCode::InvalidToken
        );
    }

    #[test]
    fn agent_requests_from_the_brokers_own_pages_pass() {
        let site = Site::new("demo", "Demo", ["https://shop.example"]);
        let headers = |origin: &str, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
            h.insert(HOST, HeaderValue::from_str(host).unwrap());
            h
        };
        assert!(
            check_agent_origin(&headers("https://shop.example", "b.example"), Some(&site)).is_ok()
        );
        assert!(check_agent_origin(
            &headers("http://b.example:8080", "b.example:8080"),
            Some(&site)
        )
        .is_ok());
        let e = check_agent_origin(&headers("https://evil.example", "b.example"), Some(&site))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OriginNotAllowed);
        assert!(check_origin(&headers("http://b.example", "b.example"), Some(&site)).is_err());
    }
}
