//! `POST /v1/codes`: a visitor asks for a support code.
//!
//! What the request says about its visitor is checked against the site's
//! `auth_mode` first (see [`crate::identity`]); a refused request stores
//! nothing. The session then joins its visitor's record in the store, and
//! a signed-in visitor's anonymous tickets move to their account.

use agent_assist_protocol::{CreateCodeRequest, CreateCodeResponse, ErrorCode};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};

use crate::error::{AppError, Result};
use crate::extract::{check_origin, ApiJson, ClientAddress};
use crate::identity;
use crate::secrets::{
    hash_token, new_device_token, new_session_id, new_stream_ticket, random_codes, ticket_key,
    STREAM_TICKET_TTL_SECS,
};
use crate::store::{CreateLimited, CreateOutcome, CreateScope, NewSession};
use crate::AppState;

/// How many random codes to try before saying the site has none free. Each
/// try clashes with probability (live codes / 10⁶), so even a site with
/// 900,000 live codes gets a code this way 99.9% of the time; failing after
/// a bounded number of tries keeps a full code space from looping forever.
pub const MAX_CODE_ATTEMPTS: usize = 64;

/// How far below its `site_live` limit a site's known count must be for the
/// exact count to be skipped. The known count (the sweep's, raised by every
/// code issued since) falls short of the truth only by the codes committed
/// while the sweep counted, or, with several brokers on one store, by what
/// the others issued since this one's sweep: far fewer than this.
pub const SITE_COUNT_MARGIN: u64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/codes", post(create))
}

async fn create(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateCodeRequest>,
) -> Result<(StatusCode, Json<CreateCodeResponse>)> {
    let site = state
        .config
        .site(&request.site_key)
        .ok_or_else(|| AppError::new(ErrorCode::UnknownSite, "no site has this site_key"))?;
    check_origin(&headers, Some(site))?;
    let now = state.clock.now_ms();
    let visitor = identity::check_code_request(site, &request, now / 1000)?;
    let mut limits = site.create_limits;
    // The site's live codes are counted exactly, in the code's own
    // transaction, only when the site may be near its limit; far from it
    // the count would cost a read of every live code for nothing.
    if u64::from(limits.site_live) > state.site_codes.get(&site.key) + SITE_COUNT_MARGIN {
        limits.site_live = 0;
    }
    let expires_at = now + u64::from(site.code_lifetime_secs) * 1000;
    let session_id = new_session_id();
    let device_token = new_device_token();
    let token_hash = hash_token(&device_token);
    // The widget follows the session from the moment the code is shown, so
    // the first stream ticket comes with the code (one round trip fewer).
    let stream_ticket = new_stream_ticket();
    let ticket_key = ticket_key(&stream_ticket);
    let ticket_expires_at = now + u64::from(STREAM_TICKET_TTL_SECS) * 1000;

    // All the tries go to the store at once: it takes the first code no
    // live session of the site holds, in one transaction.
    let new = NewSession {
        id: session_id.clone(),
        site_key: site.key.clone(),
        codes: random_codes(MAX_CODE_ATTEMPTS),
        token_hash,
        visitor: visitor.clone(),
        created_at: now,
        expires_at,
        ticket_key,
        ticket_expires_at,
        address: address.key(),
        limits,
    };
    let outcome = state.store.create_session(new).await?;
    if let CreateOutcome::Limited(limited) = outcome {
        tracing::info!(site = %site.key, scope = ?limited.scope, "code request over a creation limit");
        return Err(limited_error(limited, now));
    }
    if let CreateOutcome::Created {
        code,
        events,
        visitor: visitor_record,
        merged,
    } = outcome
    {
        state.site_codes.add_one(&site.key);
        state.publish(&events);
        if merged > 0 {
            tracing::info!(
                site = %site.key,
                visitor = %visitor_record,
                tickets = merged,
                "anonymous visitor's tickets merged into the signed-in user's"
            );
        }
        tracing::info!(
            session_id = %session_id,
            site = %site.key,
            visitor = %visitor_record,
            verified = visitor.verified.is_some(),
            "code issued"
        );
        let response = CreateCodeResponse {
            code,
            session_id,
            expires_at,
            expires_in: site.code_lifetime_secs,
            device_token,
            stream_ticket,
        };
        return Ok((StatusCode::CREATED, Json(response)));
    }
    tracing::warn!(site = %site.key, attempts = MAX_CODE_ATTEMPTS, "no free code found");
    Err(AppError::new(
        ErrorCode::NoFreeCodes,
        "every code of this site is in use right now; try again in a minute",
    ))
}

/// The 429 for a request over a creation limit: which one, in words a
/// developer (or a support page) can act on, and when to try again; the
/// site-wide limit is the 503 of a full code space.
fn limited_error(limited: CreateLimited, now_ms: u64) -> AppError {
    let retry_after = u32::try_from(limited.until_ms.saturating_sub(now_ms).div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1);
    let why = match limited.scope {
        CreateScope::VisitorLive => {
            "this visitor already has as many support codes waiting as the site allows; \
             cancel one or wait for it to expire"
        }
        CreateScope::VisitorRate => "this visitor asked for too many support codes this minute",
        CreateScope::AddressLive => {
            "this network address already has as many support codes waiting as the site allows"
        }
        CreateScope::AddressRate => {
            "this network address asked for too many support codes this minute"
        }
        // Not this client's doing: the site as a whole is full.
        CreateScope::SiteLive => {
            return AppError::new(
                ErrorCode::NoFreeCodes,
                "this site has as many codes waiting as it allows; try again in a minute",
            )
        }
    };
    AppError::Limited {
        retry_after,
        message: format!("{why}; try again in {retry_after} s"),
    }
}
