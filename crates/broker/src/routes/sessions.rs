//! A session after its code was issued: `GET /v1/sessions/{id}` (device or
//! the session's agent), `POST …/cancel` and `POST …/consent` (device),
//! `POST …/end` (device or the session's agent). [`authorize`] also guards
//! the other routes about one session (stream tickets, the visitor).
//!
//! Every change goes through [`AppState::apply`], which checks it against
//! the lifecycle table and announces it on the session's event stream.

use agent_assist_protocol::{ConsentRequest, SessionState, SessionStatus};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{self, Agent, Credential};
use crate::error::{AppError, Result};
use crate::extract::{check_agent_origin, check_origin, ApiJson};
use crate::secrets::{digests_match, hash_token, is_session_id};
use crate::store::{Change, Session};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}", get(status))
        .route("/v1/sessions/{id}/cancel", post(cancel))
        .route("/v1/sessions/{id}/consent", post(consent))
        .route("/v1/sessions/{id}/end", post(end))
}

/// Who may call a route about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Only the visitor's device, by its device token.
    Device,
    /// The device, or the agent who redeemed the session's code.
    DeviceOrAgent,
    /// Only the agent who redeemed the session's code.
    Agent,
}

/// Who called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Device,
    Agent(Agent),
}

async fn status(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SessionStatus>> {
    let (session, _) = authorize(&state, id, &headers, Allowed::DeviceOrAgent).await?;
    Ok(Json(session.status()))
}

async fn cancel(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SessionStatus>> {
    let (session, _) = authorize(&state, id, &headers, Allowed::Device).await?;
    if session.state == SessionState::Ended {
        return Ok(Json(session.status()));
    }
    let update = state
        .apply(&session.id, Change::DeviceCancel)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    let s = update.session;
    match (update.refused, s.state) {
        (None, _) => {
            tracing::info!(session_id = %s.id, site = %s.site_key, "code cancelled by the device");
            Ok(Json(s.status()))
        }
        // It ended some other way meanwhile (expiry, a race): nothing to do.
        (Some(_), SessionState::Ended) => Ok(Json(s.status())),
        (Some(_), _) => Err(AppError::invalid_state(
            "the session is active; end it rather than cancel it",
        )),
    }
}

async fn consent(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<ApiJson<ConsentRequest>, AppError>,
) -> Result<Json<SessionStatus>> {
    let (session, _) = authorize(&state, id, &headers, Allowed::Device).await?;
    let ApiJson(ConsentRequest { allow }) = body?;
    let change = if allow { Change::Allow } else { Change::Deny };
    let update = state
        .apply(&session.id, change)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    let s = update.session;
    if update.refused.is_some() {
        return Err(AppError::invalid_state(format!(
            "the session is not waiting for consent (it is {})",
            describe(&s)
        )));
    }
    let agent_id = s.agent.as_ref().map_or("", |a| a.id.as_str());
    if allow {
        tracing::info!(session_id = %s.id, site = %s.site_key, agent_id, "consent given");
    } else {
        tracing::info!(session_id = %s.id, site = %s.site_key, agent_id, "consent denied");
    }
    Ok(Json(s.status()))
}

async fn end(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<SessionStatus>> {
    let (session, actor) = authorize(&state, id, &headers, Allowed::DeviceOrAgent).await?;
    if session.state == SessionState::Ended {
        return Ok(Json(session.status()));
    }
    let change = match actor {
        Actor::Device => Change::DeviceEnd,
        Actor::Agent(_) => Change::AgentEnd,
    };
    let update = state
        .apply(&session.id, change)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    let s = update.session;
    match (update.refused, s.state) {
        (None, _) => {
            let by = if matches!(actor, Actor::Device) {
                "device"
            } else {
                "agent"
            };
            tracing::info!(session_id = %s.id, site = %s.site_key, by = %by, "session ended");
            Ok(Json(s.status()))
        }
        (Some(_), SessionState::Ended) => Ok(Json(s.status())),
        (Some(_), _) => Err(AppError::invalid_state(format!(
            "the session cannot be ended now (it is {})",
            describe(&s)
        ))),
    }
}

/// `state` or `ended: reason`, in their wire spelling, for messages.
fn describe(s: &Session) -> String {
    let wire = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let state = wire(serde_json::to_value(s.state));
    match s.end_reason {
        Some(reason) => format!("{state}: {}", wire(serde_json::to_value(reason))),
        None => state,
    }
}

/// The session named in the path, if the request may act on it, and who is
/// acting: the session exists (else 404), the browser origin is one its site
/// allows (else 403), and the bearer is its device token or, where
/// `allowed` says so, the credential of the agent who redeemed it (else 401;
/// another agent gets 404, as if the session did not exist). Credentials are
/// looked at only once the session is found; a device token is compared as
/// a hash in constant time.
pub async fn authorize(
    state: &AppState,
    id: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    allowed: Allowed,
) -> Result<(Session, Actor)> {
    let id = id.map_err(|_| AppError::unknown_session())?.0;
    if !is_session_id(&id) {
        return Err(AppError::unknown_session());
    }
    let session = state
        .session(&id)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    let site = state.config.site(&session.site_key);
    match auth::credential(headers) {
        Ok(Credential::Device(_)) if allowed == Allowed::Agent => {
            check_origin(headers, site)?;
            Err(AppError::invalid_agent_token(
                "a device token is not an agent credential",
            ))
        }
        Ok(Credential::Device(token)) => {
            check_origin(headers, site)?;
            if !digests_match(&hash_token(token), &session.token_hash) {
                return Err(AppError::invalid_token());
            }
            Ok((session, Actor::Device))
        }
        Ok(agent @ (Credential::ApiToken(_) | Credential::Jwt(_)))
            if allowed != Allowed::Device =>
        {
            check_agent_origin(headers, site)?;
            let agent = auth::authenticate(state, agent).await?;
            if !agent.is(session.agent.as_ref(), &session.site_key) {
                return Err(AppError::unknown_session());
            }
            Ok((session, Actor::Agent(agent)))
        }
        _ if allowed == Allowed::Agent => {
            check_agent_origin(headers, site)?;
            Err(AppError::invalid_agent_token(
                "missing or malformed `Authorization: Bearer <credential>`",
            ))
        }
        _ => {
            check_origin(headers, site)?;
            Err(AppError::invalid_token())
        }
    }
}
