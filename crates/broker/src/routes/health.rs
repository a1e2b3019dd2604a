//! `GET /healthz`: for load balancers and start-up scripts.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(health))
}

/// Answers as soon as the broker serves requests. It does not touch the
/// store: a probe must stay cheap when it is polled every second.
async fn health() -> Json<Value> {
    Json(json!({ "ok": true }))
}
