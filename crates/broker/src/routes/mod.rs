//! The HTTP API, one file per resource, each with its own `router()`.

pub mod codes;
pub mod health;
pub mod sessions;

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
        .merge(health::router())
        .route("/v1/{*rest}", any(error::not_found))
}
