//! Live session state for both sides: `POST /v1/sessions/{id}/ticket`
//! (device or the session's agent) hands out a stream ticket, and
//! `GET /v1/sessions/{id}/events?ticket=…` streams the session's statuses as
//! Server-Sent Events.
//!
//! `EventSource` cannot send an `Authorization` header, so the stream's
//! credential has to be in the URL, where proxies and access logs may see
//! it. That is why it is a ticket and not the token: 128 random bits (after
//! its issue time), stored hashed, bound to one session, read-only, and
//! usable to (re)connect for five minutes only. The broker's own request
//! log records the path, never the query.
//!
//! Each event is `id: <seq>`, `event: session`, `data: <SessionStatus>`.
//! A client that reconnects sends the last id it saw (`Last-Event-ID`, which
//! `EventSource` does by itself, or `last_event_id` in the query) and gets
//! every stored event after it before the live ones, so a dropped
//! connection misses nothing. The stream closes after the `ended` event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agent_assist_protocol::{ErrorCode, SessionState, StreamTicket, SESSION_EVENT};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError};

use super::sessions::{authorize, Allowed};
use crate::error::{AppError, Result};
use crate::extract::check_origin;
use crate::secrets::{is_stream_ticket, ticket_key, STREAM_TICKET_TTL_SECS};
use crate::store::SessionEvent;
use crate::AppState;

/// How long a client waits before reconnecting a dropped stream (`retry:`).
pub const RECONNECT_DELAY: Duration = Duration::from_millis(2000);

/// How often a comment line is sent on an idle stream, so proxies and load
/// balancers do not close it as dead.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

const LAST_EVENT_ID: &str = "last-event-id";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}/ticket", post(ticket))
        .route("/v1/sessions/{id}/events", get(events))
}

async fn ticket(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<StreamTicket>> {
    let (session, _) = authorize(&state, id, &headers, Allowed::DeviceOrAgent).await?;
    let ticket = state.issue_ticket(&session.id).await?;
    Ok(Json(StreamTicket {
        ticket,
        expires_in: STREAM_TICKET_TTL_SECS,
    }))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    ticket: Option<String>,
    last_event_id: Option<String>,
}

fn bad_ticket() -> AppError {
    AppError::new(
        ErrorCode::InvalidToken,
        "missing, expired or wrong `ticket` for this session's events; \
         ask for a new one with POST /v1/sessions/{id}/ticket",
    )
}

async fn events(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    // The rejection's text could quote the query, ticket and all: it is not
    // passed on.
    let Query(query) =
        query.map_err(|_| AppError::new(ErrorCode::InvalidField, "malformed query string"))?;
    let id = id.map_err(|_| bad_ticket())?.0;
    let ticket = query
        .ticket
        .filter(|t| is_stream_ticket(t))
        .ok_or_else(bad_ticket)?;
    let ticket_session = state
        .store
        .ticket_session(ticket_key(&ticket), state.clock.now_ms())
        .await?;
    if ticket_session.as_deref() != Some(id.as_str()) {
        return Err(bad_ticket());
    }
    let last = last_event_id(&headers, query.last_event_id.as_deref())?;

    let session = state
        .session(&id)
        .await?
        .ok_or_else(AppError::unknown_session)?;
    check_origin(&headers, state.config.site(&session.site_key))?;

    // Subscribe before reading the log: an event committed in between is
    // then both in the log and on the channel, and the duplicate is dropped
    // by its `seq`; the other order could miss it.
    let rx = state.hub.subscribe(&id);
    let replay = state.store.events_after(&id, last).await?;
    let follow = Follow {
        closed: Box::pin(state.closed()),
        state,
        session_id: id,
        rx,
        queue: replay.into(),
        last,
        // An ended session's stream closes once the log is replayed.
        ended: session.state == SessionState::Ended,
    };
    let retry = Event::default().retry(RECONNECT_DELAY);
    let body = stream::once(async move { Ok(retry) }).chain(stream::unfold(follow, next_event));
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL))
        .into_response())
}

/// The id after which to start: `Last-Event-ID` (what `EventSource` sends
/// on reconnecting) or else `last_event_id` from the query; 0 for all.
fn last_event_id(headers: &HeaderMap, query: Option<&str>) -> Result<u64> {
    let given = match headers.get(LAST_EVENT_ID) {
        Some(v) => Some(v.to_str().unwrap_or("x")),
        None => query,
    };
    match given.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            AppError::new(
                ErrorCode::InvalidField,
                "Last-Event-ID / last_event_id must be an event id (a whole number)",
            )
        }),
    }
}

/// One open stream.
struct Follow {
    state: AppState,
    session_id: String,
    rx: broadcast::Receiver<SessionEvent>,
    /// Events to send, oldest first (the replay, then whatever arrived).
    queue: VecDeque<SessionEvent>,
    /// The `seq` of the last event sent (or the client's `Last-Event-ID`).
    last: u64,
    /// Set once `ended` has been sent: the stream closes when the queue is empty.
    ended: bool,
    closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// The stream's next SSE event, or `None` to close it.
async fn next_event(mut f: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    loop {
        if let Some(event) = f.queue.pop_front() {
            if event.seq <= f.last {
                continue;
            }
            f.last = event.seq;
            if event.status.state == SessionState::Ended {
                f.ended = true;
            }
            return Some((Ok(to_sse(&event)), f));
        }
        if f.ended {
            return None;
        }
        let received = tokio::select! {
            () = &mut f.closed => return None,
            received = f.rx.recv() => received,
        };
        match received {
            Ok(event) if event.seq <= f.last => {}
            Ok(event) if event.seq == f.last + 1 => f.queue.push_back(event),
            // A gap (events published out of order, or missed while this
            // stream lagged): the store has them all, in order.
            Ok(_) | Err(RecvError::Lagged(_)) => {
                if !refill(&mut f).await {
                    return None;
                }
            }
            Err(RecvError::Closed) => {
                // The hub let go of the session; whatever it had is in the log.
                if !refill(&mut f).await || f.queue.is_empty() {
                    return None;
                }
            }
        }
    }
}

/// Queues the stored events after the last one sent; false if the store failed.
async fn refill(f: &mut Follow) -> bool {
    match f.state.store.events_after(&f.session_id, f.last).await {
        Ok(events) => {
            f.queue.extend(events);
            true
        }
        Err(e) => {
            // The client reconnects (`retry:`) and resumes from `last`.
            tracing::error!(error = %e, session_id = %f.session_id, "reading session events failed");
            false
        }
    }
}

fn to_sse(event: &SessionEvent) -> Event {
    // Serializing a plain struct to JSON cannot fail.
    let data = serde_json::to_string(&event.status).unwrap_or_default();
    Event::default()
        .id(event.seq.to_string())
        .event(SESSION_EVENT)
        .data(data)
}
