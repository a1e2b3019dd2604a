//! `GET /v1/sessions/{id}` and `POST /v1/sessions/{id}/cancel`: the device
//! follows and withdraws its session, authenticated by its device token.

use agent_assist_protocol::{ErrorCode, SessionStatus};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::error::{AppError, Result};
use crate::extract::{bearer_token, check_origin};
use crate::secrets::{digests_match, hash_token, is_session_id};
use crate::store::{CancelOutcome, Session};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}", get(status))
        .route("/v1/sessions/{id}/cancel", post(cancel))
}

async fn status(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SessionStatus>> {
    let session = authorize(&state, id, &headers).await?;
    Ok(Json(session.status()))
}

async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SessionStatus>> {
    let session = authorize(&state, id, &headers).await?;
    match state
        .store
        .cancel(&session.id, state.clock.now_ms())
        .await?
    {
        CancelOutcome::Cancelled(s) => {
            tracing::info!(session_id = %s.id, site = %s.site_key, "code cancelled by the device");
            Ok(Json(s.status()))
        }
        CancelOutcome::AlreadyEnded(s) => Ok(Json(s.status())),
        CancelOutcome::Active(_) => Err(AppError::new(
            ErrorCode::InvalidState,
            "the session is active; end it rather than cancel it",
        )),
        CancelOutcome::NotFound => Err(AppError::unknown_session()),
    }
}

/// The session named in the path, if the request may act on it: the session
/// exists (else 404), the browser origin is one its site allows (else 403),
/// and the bearer is its device token (else 401). The token is looked at
/// only once the session is found, and compared as a hash in constant time.
async fn authorize(
    state: &AppState,
    id: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<Session> {
    let id = id.map_err(|_| AppError::unknown_session())?.0;
    if !is_session_id(&id) {
        return Err(AppError::unknown_session());
    }
    let session = state
        .store
        .session(&id, state.clock.now_ms())
        .await?
        .ok_or_else(AppError::unknown_session)?;
    check_origin(headers, state.config.site(&session.site_key))?;
    let token = bearer_token(headers)?;
    if !digests_match(&hash_token(token), &session.token_hash) {
        return Err(AppError::invalid_token());
    }
    Ok(session)
}
