//! The HTTP API, one file per resource, each with its own `router()`.
//!
//! - [`codes`]: `POST /v1/codes` (visitor).
//! - [`sessions`]: `GET /v1/sessions/{id}`, `POST …/cancel|consent|end`.
//! - [`events`]: `POST /v1/sessions/{id}/ticket`, `GET …/events` (SSE).
//! - [`agent`]: `GET /v1/agent/me`, `POST /v1/agent/redeem` (agent).
//! - [`visitors`]: `GET /v1/sessions/{id}/visitor` (the session's agent).
//! - [`mirror`]: the live mirror's WebSockets, `GET /v1/sessions/{id}/mirror`
//!   (the visitor's page) and `GET …/mirror/view` (the session's agent).
//! - [`demo`]: `POST /demo/login`, the demo shop's fake login (only with
//!   `serve --demo-login`; 404 otherwise).
//! - [`health`]: `GET /healthz`.
//! - [`openapi`]: `GET /v1/openapi.json`, this API as an OpenAPI 3.1 document.

pub mod agent;
pub mod codes;
pub mod demo;
pub mod events;
pub mod health;
pub mod mirror;
pub mod openapi;
pub mod sessions;
pub mod visitors;

use axum::routing::any;
use axum::Router;

use crate::error;
use crate::AppState;

/// Every API route, plus a JSON 404 for unknown paths under `/v1/` (so that
/// they are answered the same whether or not static pages are served).
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(codes::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(agent::router())
        .merge(visitors::router())
        .merge(mirror::router())
        .merge(demo::router())
        .merge(health::router())
        .merge(openapi::router())
        .route("/v1/{*rest}", any(error::not_found))
}
