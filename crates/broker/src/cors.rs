//! Cross-origin access for the widget, per site.
//!
//! The widget runs on the site's pages and calls the broker with `fetch`, so
//! the browser asks (preflight) before sending JSON or a bearer token. Its
//! `EventSource` needs no preflight until it reconnects with `Last-Event-ID`. A
//! preflight does not say which site it is for, so it is allowed for an
//! origin that any site allows; the request itself is then checked against
//! its own site by the route (see [`crate::extract::check_origin`]).
//!
//! Answers to an allowed origin carry `Access-Control-Allow-Origin`, error
//! answers too, so the widget can read the JSON error body. An answer that
//! refused the origin does not.

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, OriginRefused};
use crate::AppState;

/// Only the API is cross-origin; static pages and the SDK bundle are loaded
/// by tags, which need no CORS.
const API_PREFIX: &str = "/v1/";

/// The CORS middleware; see the module documentation.
pub async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with(API_PREFIX) {
        return next.run(req).await;
    }
    let origin = req.headers().get(ORIGIN).cloned();
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| state.config.any_site_allows(o));

    let mut response = if req.method() == Method::OPTIONS {
        preflight(origin.as_ref(), allowed)
    } else {
        next.run(req).await
    };

    if let (true, Some(origin)) = (allowed, origin) {
        if response.extensions().get::<OriginRefused>().is_none() {
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
    }
    // The answer depends on `Origin`, so caches must key on it, whether or
    // not this request had one.
    response
        .headers_mut()
        .append(VARY, HeaderValue::from_static("Origin"));
    response
}

fn preflight(origin: Option<&HeaderValue>, allowed: bool) -> Response {
    if !allowed {
        let shown = origin.and_then(|o| o.to_str().ok()).unwrap_or("(none)");
        return AppError::origin_not_allowed(shown).into_response();
    }
    (
        StatusCode::NO_CONTENT,
        [
            (ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            // `last-event-id`: an `EventSource` that reconnects to another
            // origin sends it, and it is not a CORS-safelisted header.
            (
                ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type, last-event-id",
            ),
            // Ten minutes: long enough to spare the widget a preflight per
            // poll, short enough that a changed configuration takes effect.
            (ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
        .into_response()
}
