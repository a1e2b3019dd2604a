//! The agent's side: `GET /v1/agent/me` (who the credential belongs to) and
//! `POST /v1/agent/redeem` (enter the code the visitor read out).
//!
//! A successful redemption answers with the session, a stream ticket, and
//! the visitor: their record (anonymous, typed or verified, with any custom
//! data) and their tickets at this site, newest first, including those
//! merged from before they signed in (see [`crate::identity`]).
//!
//! A redemption that fails — wrong, expired, cancelled, used, or another
//! site's code — gets one answer, `no_such_code`, whatever the reason, and
//! counts against the agent's and the site's limits (see [`crate::limits`]).
//! Locked agents get `rate_limited` with `Retry-After`. Two agents entering
//! the same code at once: the compare-and-set in the store lets exactly one
//! win; the other gets `no_such_code`, which is not counted as a failure.

use agent_assist_protocol::{
    is_valid_code, AgentMe, ErrorCode, RedeemRequest, RedeemResponse, SiteInfo,
};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{Agent, AgentAuth};
use crate::config::Site;
use crate::error::{AppError, Result};
use crate::extract::{check_agent_origin, ApiJson};
use crate::store::{Change, RedeemAttempt, RedeemStart};
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/me", get(me))
        .route("/v1/agent/redeem", post(redeem))
}

/// The agent's site, and the origin check for it.
fn agent_site<'a>(state: &'a AppState, agent: &Agent, headers: &HeaderMap) -> Result<&'a Site> {
    // `AgentAuth` has checked that the site exists.
    let site = state
        .config
        .site(&agent.site_key)
        .ok_or_else(|| AppError::invalid_agent_token("the agent's site is not configured"))?;
    check_agent_origin(headers, Some(site))?;
    Ok(site)
}

async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    AgentAuth(agent): AgentAuth,
) -> Result<Json<AgentMe>> {
    let site = agent_site(&state, &agent, &headers)?;
    Ok(Json(AgentMe {
        agent: agent.info(),
        site: SiteInfo {
            key: site.key.clone(),
            name: site.name.clone(),
        },
    }))
}

async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    AgentAuth(agent): AgentAuth,
    body: Result<ApiJson<RedeemRequest>, AppError>,
) -> Result<Json<RedeemResponse>> {
    let site = agent_site(&state, &agent, &headers)?;
    let ApiJson(RedeemRequest { code }) = body?;
    // A typo in the form of the code is not a guess: it is refused without
    // counting against the limits.
    if !is_valid_code(&code) {
        return Err(AppError::new(
            ErrorCode::InvalidField,
            "code must be exactly 6 digits",
        ));
    }

    let now = state.clock.now_ms();
    let attempt = RedeemAttempt {
        site_key: site.key.clone(),
        agent_id: agent.id.clone(),
        code,
        limits: site.redeem_limits,
        now_ms: now,
    };
    let session_id = match state.store.begin_redeem(attempt).await? {
        RedeemStart::Locked(lock) => {
            return Err(AppError::rate_limited(lock.retry_after_secs(now)));
        }
        RedeemStart::Failed { lock_started } => {
            if let Some(lock) = lock_started {
                tracing::warn!(
                    agent_id = %agent.id,
                    site = %site.key,
                    limit = lock.scope.as_str(),
                    retry_after = lock.retry_after_secs(now),
                    "redeeming locked after too many failed codes"
                );
            } else {
                tracing::info!(agent_id = %agent.id, site = %site.key, "failed redemption");
            }
            return Err(AppError::no_such_code());
        }
        RedeemStart::Live { session_id } => session_id,
    };
    let change = Change::Redeem {
        agent: agent.info(),
        consent_expires_at: now + u64::from(site.consent_timeout_secs) * 1000,
    };
    let update = state
        .apply(&session_id, change)
        .await?
        .ok_or_else(AppError::no_such_code)?;
    if update.refused.is_some() {
        tracing::info!(
            session_id = %session_id,
            agent_id = %agent.id,
            site = %site.key,
            "code redeemed by someone else first"
        );
        return Err(AppError::no_such_code());
    }
    let session = update.session;
    let stream_ticket = state.issue_ticket(&session.id).await?;
    let visitor = state
        .visitor_view(&session.id, &session.site_key)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    tracing::info!(session_id = %session.id, agent_id = %agent.id, site = %site.key, "code redeemed");
    Ok(Json(RedeemResponse {
        session: session.status(),
        visitor,
        stream_ticket,
    }))
}
