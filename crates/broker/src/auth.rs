//! Who is calling: agents (by API token or JWT) and devices (by device token).
//!
//! A bearer credential is told apart by its shape, before anything is looked
//! up: `aat_` and 64 hex digits is an agent API token (checked against the
//! stored SHA-256, and refused once revoked), three dot-separated parts is a
//! JWT (checked with the secret of the site it names, see [`crate::jwt`]),
//! 64 hex digits is a device token. Anything else is refused at once.

use agent_assist_protocol::AgentInfo;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::{AppError, Result};
use crate::extract::bearer;
use crate::jwt;
use crate::secrets::{hash_token, is_api_token, is_device_token};
use crate::AppState;

/// An authenticated agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// `agt_…` for an API token, the JWT's `sub` otherwise; unique within the site.
    pub id: String,
    pub name: String,
    /// The site the agent works for; it exists in the configuration.
    pub site_key: String,
}

impl Agent {
    /// The agent as the visitor sees it.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// True when this agent is `who` at `site_key` (the agent who redeemed a
    /// session).
    pub fn is(&self, who: Option<&AgentInfo>, site_key: &str) -> bool {
        self.site_key == site_key && who.is_some_and(|a| a.id == self.id)
    }
}

/// The kinds of bearer credential, by shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Device(&'a str),
    ApiToken(&'a str),
    Jwt(&'a str),
}

/// The request's bearer credential, classified; 401 `invalid_token` when it
/// is missing or has no known shape.
pub fn credential(headers: &HeaderMap) -> Result<Credential<'_>> {
    let token = bearer(headers).ok_or_else(|| {
        AppError::invalid_agent_token("missing `Authorization: Bearer <credential>`")
    })?;
    classify(token)
}

/// `token` classified by its shape, wherever it came from (a header, the
/// first frame of a mirror socket); 401 `invalid_token` when it has no
/// known shape.
pub fn classify(token: &str) -> Result<Credential<'_>> {
    if token.starts_with(crate::secrets::API_TOKEN_PREFIX) {
        return if is_api_token(token) {
            Ok(Credential::ApiToken(token))
        } else {
            Err(AppError::invalid_agent_token("malformed API token"))
        };
    }
    if jwt::looks_like_jwt(token) {
        return Ok(Credential::Jwt(token));
    }
    if is_device_token(token) {
        return Ok(Credential::Device(token));
    }
    Err(AppError::invalid_agent_token(
        "not an agent API token, a JWT or a device token",
    ))
}

/// Checks an agent credential (API token or JWT).
pub async fn authenticate(state: &AppState, credential: Credential<'_>) -> Result<Agent> {
    let agent = match credential {
        Credential::ApiToken(token) => {
            let record = state
                .store
                .agent_by_token(hash_token(token))
                .await?
                .ok_or_else(|| AppError::invalid_agent_token("unknown API token"))?;
            if record.revoked_at.is_some() {
                return Err(AppError::invalid_agent_token(
                    "this API token has been revoked",
                ));
            }
            Agent {
                id: record.id,
                name: record.name,
                site_key: record.site_key,
            }
        }
        Credential::Jwt(token) => {
            let claims = jwt::verify(token, &state.config, state.clock.now_ms() / 1000)
                .map_err(AppError::invalid_agent_token)?;
            Agent {
                id: claims.sub,
                name: claims.name,
                site_key: claims.site,
            }
        }
        Credential::Device(_) => {
            return Err(AppError::invalid_agent_token(
                "a device token is not an agent credential",
            ))
        }
    };
    // A site removed from the configuration takes its agents with it.
    if state.config.site(&agent.site_key).is_none() {
        return Err(AppError::invalid_agent_token(
            "the agent's site is not configured on this broker",
        ));
    }
    Ok(agent)
}

/// Extractor for routes only agents may call: `Authorization: Bearer` with
/// an agent API token or JWT.
#[derive(Debug, Clone)]
pub struct AgentAuth(pub Agent);

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let credential = credential(&parts.headers)?;
        authenticate(state, credential).await.map(AgentAuth)
    }
}
