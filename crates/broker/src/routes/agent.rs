//! The agent's side: `GET /v1/agent/me` (who the credential belongs to) and
//! `POST /v1/agent/redeem` (enter the code the visitor read out).
//!
//! A redemption that fails — wrong, expired, cancelled, used, or another
//! site's code — gets one answer, `no_such_code`, whatever the reason, and
//! counts against the agent's and the site's limits (see [`crate::limits`]).
//! Locked agents get `rate_limited` with `Retry-After`. Two agents entering
//! the same code at once: the compare-and-set in the store lets exactly one
//! win; the other gets `no_such_code`, which is not counted as a failure.

use agent_assist_protocol::{
    is_valid_code, AgentMe, ErrorCode, RedeemRequest, RedeemResponse, SiteInfo, VisitorView,
};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::auth::{Agent, AgentAuth};
use crate::clock::UtcMinute;
use crate::config::Site;
use crate::error::{AppError, Result};
use crate::extract::{check_agent_origin, ApiJson};
use crate::store::{Change, RedeemAttempt, RedeemStart, Session};
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
    let (failure, session_id) = match state.store.begin_redeem(attempt).await? {
        RedeemStart::Locked(lock) => {
            return Err(AppError::rate_limited(lock.retry_after_secs(now)));
        }
        RedeemStart::Attempted {
            session_id: None,
            lock_started,
            ..
        } => {
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
        RedeemStart::Attempted {
            failure,
            session_id: Some(id),
            ..
        } => (failure, id),
    };
    // The code was live: whatever happens next, this was not a guess.
    state.store.forgive_failure(failure).await?;
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
    tracing::info!(session_id = %session.id, agent_id = %agent.id, site = %site.key, "code redeemed");
    Ok(Json(RedeemResponse {
        session: session.status(),
        visitor: visitor_view(&session),
        stream_ticket,
    }))
}

/// The visitor as the agent sees them.
fn visitor_view(session: &Session) -> VisitorView {
    let given = |v: &Option<String>| v.as_ref().filter(|s| !s.trim().is_empty()).cloned();
    let name = given(&session.visitor_name);
    let email = given(&session.visitor_email);
    VisitorView {
        display_name: name
            .clone()
            .unwrap_or_else(|| web_user_label(session.created_at)),
        name,
        email,
    }
}

/// `Web User - MM/DD HH:MM`, the session's creation time in UTC: what an
/// anonymous visitor is called, so an agent juggling several can tell them
/// apart by when they asked.
pub fn web_user_label(created_at_ms: u64) -> String {
    let t = UtcMinute::from_ms(created_at_ms);
    format!(
        "Web User - {:02}/{:02} {:02}:{:02}",
        t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_visitors_are_named_by_their_utc_creation_time() {
        assert_eq!(web_user_label(1_700_000_000_000), "Web User - 11/14 22:13");
        assert_eq!(web_user_label(1_704_070_860_000), "Web User - 01/01 01:01");
    }
}
