//! `GET /v1/sessions/{id}/visitor`: who the visitor of a session is, for
//! the agent who redeemed it — the same [`VisitorView`] the redemption
//! answered with, read again so the console can refresh the history (a
//! ticket that ended, a merge after the visitor signed in).
//!
//! Only that agent may read it: the device gets 401, and any other agent,
//! of this site or another, gets 404 as if the session did not exist.

use agent_assist_protocol::VisitorView;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};

use super::sessions::{authorize, Allowed};
use crate::error::{AppError, Result};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{id}/visitor", get(visitor))
}

async fn visitor(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<VisitorView>> {
    let (session, _) = authorize(&state, id, &headers, Allowed::Agent).await?;
    let view = state
        .visitor_view(&session.id, &session.site_key)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    Ok(Json(view))
}
