//! `POST /demo/login`: the demo shop's fake login. **Demo only.**
//!
//! A real site's server signs its logged-in user's identity with the site's
//! secret (see `examples/`); the demo shop has no server of its own, so the
//! broker plays that part for a few made-up users when started with
//! `serve --demo-login`. Without the flag the route answers 404 like any
//! unknown path. Anyone who can reach it can sign in as those users, which
//! is why it is off by default and why the broker warns at start when it is
//! on.
//!
//! The body is `{ "site_key": "demo", "user": "alex" }`; the answer is what
//! `AgentAssist.identify()` takes, in the page's camelCase:
//! `{ userId, name, email, customData, token }`, the token valid for an
//! hour. The route is for the broker's own pages only: it is outside
//! `/v1/`, so it gets no CORS headers, and a request whose `Origin` is not
//! the broker's own host is refused.

use std::collections::BTreeMap;

use agent_assist_protocol::ErrorCode;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, Result};
use crate::extract::{from_same_host, ApiJson};
use crate::jwt::{self, IdentityClaims};
use crate::AppState;

/// How long a demo identity token lives: an hour, so a demo left open over
/// lunch signs in afresh on the next page load.
pub const DEMO_TOKEN_LIFETIME_SECS: u64 = 3600;

/// A made-up user of the demo shop.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    /// What the page asks for (`user`).
    pub login: &'static str,
    pub user_id: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub custom_data: &'static [(&'static str, &'static str)],
}

/// Every user the demo login knows.
pub const DEMO_USERS: [DemoUser; 2] = [
    DemoUser {
        login: "alex",
        user_id: "u-1001",
        name: "Alex Martin",
        email: "alex@example.com",
        custom_data: &[("plan", "Gold"), ("orders", "12")],
    },
    DemoUser {
        login: "sam",
        user_id: "u-1002",
        name: "Sam Rivera",
        email: "sam@example.com",
        custom_data: &[("plan", "Free"), ("orders", "1")],
    },
];

pub fn router() -> Router<AppState> {
    Router::new().route("/demo/login", post(login))
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    site_key: String,
    user: String,
}

/// What `AgentAssist.identify()` takes (the SDK's JavaScript spelling, not
/// a wire type of the API).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DemoIdentity {
    user_id: String,
    name: String,
    email: String,
    custom_data: BTreeMap<String, String>,
    token: String,
}

async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<LoginRequest>, AppError>,
) -> Result<Json<DemoIdentity>> {
    if !state.demo_login {
        return Err(AppError::not_found());
    }
    if headers.contains_key(axum::http::header::ORIGIN) && !from_same_host(&headers) {
        let origin = headers
            .get(axum::http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("(not ASCII)");
        return Err(AppError::origin_not_allowed(origin));
    }
    let ApiJson(LoginRequest { site_key, user }) = body?;
    let site = state
        .config
        .site(&site_key)
        .ok_or_else(|| AppError::new(ErrorCode::UnknownSite, "no site has this site_key"))?;
    let secret = site.secret.as_ref().ok_or_else(|| {
        AppError::new(
            ErrorCode::NotFound,
            "this site has no secret, so the demo login cannot sign for it",
        )
    })?;
    let demo = DEMO_USERS
        .iter()
        .find(|u| u.login == user)
        .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no demo user has this name"))?;

    let now = state.clock.now_ms() / 1000;
    let custom_data: BTreeMap<String, String> = demo
        .custom_data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut claims = IdentityClaims::new(demo.user_id, now + DEMO_TOKEN_LIFETIME_SECS);
    claims.name = Some(demo.name.to_owned());
    claims.email = Some(demo.email.to_owned());
    claims.custom = Some(custom_data.clone());
    claims.iat = Some(now);
    let token = jwt::encode(&claims, secret.as_bytes());
    tracing::info!(site = %site.key, user_id = demo.user_id, "demo login");
    Ok(Json(DemoIdentity {
        user_id: demo.user_id.to_owned(),
        name: demo.name.to_owned(),
        email: demo.email.to_owned(),
        custom_data,
        token,
    }))
}
