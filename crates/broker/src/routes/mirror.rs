//! The live mirror's WebSockets: `GET /v1/sessions/{id}/mirror`, the
//! visitor's page, and `GET /v1/sessions/{id}/mirror/view`, the agent's
//! view of it. The frames are in `agent_assist_protocol::mirror`; what the
//! broker keeps of them is in [`crate::mirror`].
//!
//! Before upgrading, the session must exist (else 404) and the browser's
//! `Origin` must be one the session's site allows (else 403): browsers do
//! not apply CORS to WebSockets, so without this check any site's page
//! could open the socket. The agent's view also accepts the broker's own
//! pages, as the agent's other requests do.
//!
//! Credentials travel in the first frame, never in the URL (which proxies
//! and access logs record): the visitor's page sends its device token, the
//! agent's view the agent's API token or JWT, within [`HELLO_TIMEOUT`].
//! Both sockets live only while the session is `active`, and are closed
//! with one of the protocol's `CLOSE_*` codes. No frame content and no
//! credential is ever logged; `serve --mirror-capture` is the one way to
//! see what was sent.

use std::sync::Arc;
use std::time::Duration;

use agent_assist_protocol::mirror::{
    Down, Up, ViewerHello, CLOSE_BAD_FRAME, CLOSE_NOT_ACTIVE, CLOSE_REPLACED, CLOSE_TOO_FAST,
    CLOSE_UNAUTHORIZED, MAX_FRAME_BYTES,
};
use agent_assist_protocol::{ErrorCode, SessionState};
use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use crate::auth::{self, Credential};
use crate::error::{AppError, Result};
use crate::extract::{check_agent_origin, check_origin};
use crate::mirror::capture::Capture;
use crate::mirror::check::PageChecker;
use crate::mirror::{self, Published, CLOSE_GOING_AWAY};
use crate::secrets::{digests_match, hash_token, is_session_id};
use crate::store::Session;
use crate::AppState;

/// How long a new socket has to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the broker pings each socket, so that proxies and load
/// balancers do not close a quiet one as dead.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// A socket that has sent nothing, not even a pong, for this long is
/// closed: its peer is gone without saying so (and a visitor's page then
/// shows as offline).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);

/// Close code for an agent's view that fell behind: "try again later". It
/// reconnects and starts again from the snapshot.
pub const CLOSE_LAGGED: u16 = close_code::AGAIN;

/// How long the broker waits for the peer's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{id}/mirror", get(visitor))
        .route("/v1/sessions/{id}/mirror/view", get(view))
}

type Upgrade = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

async fn visitor(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ws: Upgrade,
) -> Result<Response> {
    let session = find(&state, id).await?;
    check_origin(&headers, state.config.site(&session.site_key))?;
    let ws = upgrade(ws)?;
    Ok(ws.on_upgrade(move |ws| visitor_socket(state, session.id, ws)))
}

async fn view(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    ws: Upgrade,
) -> Result<Response> {
    let session = find(&state, id).await?;
    check_agent_origin(&headers, state.config.site(&session.site_key))?;
    let ws = upgrade(ws)?;
    Ok(ws.on_upgrade(move |ws| view_socket(state, session.id, ws)))
}

/// The session named in the path; 404 `unknown_session` if there is none.
async fn find(state: &AppState, id: Result<Path<String>, PathRejection>) -> Result<Session> {
    let id = id.map_err(|_| AppError::unknown_session())?.0;
    if !is_session_id(&id) {
        return Err(AppError::unknown_session());
    }
    state
        .session(&id)
        .await?
        .ok_or_else(AppError::unknown_session)
}

/// The upgrade, with the protocol's frame size limit; a plain HTTP request
/// gets a JSON 400.
fn upgrade(ws: Upgrade) -> Result<WebSocketUpgrade> {
    let ws = ws.map_err(|_| {
        AppError::new(
            ErrorCode::InvalidField,
            "this is a WebSocket endpoint: connect with `Connection: Upgrade` and \
             `Upgrade: websocket`",
        )
    })?;
    Ok(ws
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES))
}

/// The visitor's page: hello, welcome, then checked frames until the
/// session ends, the page goes, or a newer connection replaces this one.
async fn visitor_socket(state: AppState, session_id: String, ws: WebSocket) {
    let mut socket = Socket::new(ws, &state, &session_id, "visitor");
    let token = match socket.first().await {
        Some(Received::Text(text)) => match serde_json::from_str::<Up>(text.as_str()) {
            Ok(Up::Hello { token }) => token,
            _ => return socket.refuse_hello().await,
        },
        Some(Received::Gone) => return,
        _ => return socket.refuse_hello().await,
    };
    let session = match socket.session(&state).await {
        Some(session) => session,
        None => return,
    };
    if !digests_match(&hash_token(&token), &session.token_hash) {
        return socket
            .close(CLOSE_UNAUTHORIZED, "not this session's device token")
            .await;
    }
    if session.state != SessionState::Active {
        return socket
            .close(CLOSE_NOT_ACTIVE, "the session is not active")
            .await;
    }
    let config = Arc::clone(&state.config);
    let Some(site) = config.site(&session.site_key) else {
        return socket
            .close(CLOSE_UNAUTHORIZED, "the session's site is not configured")
            .await;
    };

    let mirror = mirror::attach(&state, &session_id);
    let mut closing = Box::pin(mirror.closing());
    let mut visitor = mirror.connect_visitor();
    tracing::info!(session_id = %session_id, "mirror: visitor connected");
    let welcome = Down::Welcome {
        pages: site.share_pages.clone(),
    };
    if !socket.send(to_text(&welcome)).await {
        return;
    }
    let mut checker = PageChecker::new();
    let mut ping = pinger();
    let (code, reason) = loop {
        tokio::select! {
            code = &mut closing => break closing_reason(code),
            () = visitor.replaced() => {
                break (CLOSE_REPLACED, "a newer connection replaced this one");
            }
            _ = ping.tick() => {
                if !socket.ping().await {
                    break (close_code::AWAY, "no answer");
                }
            }
            received = socket.recv() => match received {
                Received::Gone => return,
                Received::Failed => break (CLOSE_BAD_FRAME, "unreadable or too large frame"),
                Received::Binary => break socket.bad("a binary frame"),
                Received::Text(text) => {
                    if !visitor.admit(text.len()) {
                        tracing::warn!(
                            session_id = %session_id,
                            "mirror: the visitor's page sends too fast"
                        );
                        break (CLOSE_TOO_FAST, "too fast; pause, then reconnect");
                    }
                    // The parser's message could quote the frame: not logged.
                    let Ok(frame) = serde_json::from_str::<Up>(text.as_str()) else {
                        break socket.bad("not a visitor frame");
                    };
                    match checker.check(frame, site) {
                        Err(why) => break socket.bad(&why),
                        Ok(verdict) => {
                            if visitor.publish(verdict) == Published::Resync
                                && !socket.send(to_text(&Down::Resync)).await
                            {
                                return;
                            }
                        }
                    }
                }
            },
        }
    };
    // The views hear that the visitor has gone before the close handshake.
    drop(visitor);
    socket.close(code, reason).await;
}

/// The agent's view: hello, the snapshot, then everything new until the
/// session ends. The agent sends nothing after the hello.
async fn view_socket(state: AppState, session_id: String, ws: WebSocket) {
    let mut socket = Socket::new(ws, &state, &session_id, "view");
    let token = match socket.first().await {
        Some(Received::Text(text)) => match serde_json::from_str::<ViewerHello>(text.as_str()) {
            Ok(ViewerHello::Hello { token }) => token,
            Err(_) => return socket.refuse_hello().await,
        },
        Some(Received::Gone) => return,
        _ => return socket.refuse_hello().await,
    };
    let agent = match auth::classify(&token) {
        Ok(credential @ (Credential::ApiToken(_) | Credential::Jwt(_))) => {
            auth::authenticate(&state, credential).await
        }
        _ => Err(AppError::invalid_agent_token("not an agent credential")),
    };
    let agent = match agent {
        Ok(agent) => agent,
        Err(AppError::Internal(e)) => {
            tracing::error!(
                error = %e, session_id = %session_id,
                "mirror: checking an agent failed"
            );
            return socket.close(close_code::ERROR, "internal error").await;
        }
        Err(_) => {
            return socket
                .close(CLOSE_UNAUTHORIZED, "agent credential refused")
                .await
        }
    };
    let session = match socket.session(&state).await {
        Some(session) => session,
        None => return,
    };
    if !agent.is(session.agent.as_ref(), &session.site_key) {
        return socket
            .close(CLOSE_UNAUTHORIZED, "not this session's agent")
            .await;
    }
    if session.state != SessionState::Active {
        return socket
            .close(CLOSE_NOT_ACTIVE, "the session is not active")
            .await;
    }

    let mirror = mirror::attach(&state, &session_id);
    let mut closing = Box::pin(mirror.closing());
    let (first, mut frames) = mirror.subscribe();
    tracing::info!(session_id = %session_id, agent_id = %agent.id, "mirror: view opened");
    for frame in first {
        if !socket.send(frame).await {
            return;
        }
    }
    let mut ping = pinger();
    let (code, reason) = loop {
        tokio::select! {
            code = &mut closing => break closing_reason(code),
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    if !socket.send(frame).await {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => break (CLOSE_LAGGED, "fell behind; reconnect"),
                Err(RecvError::Closed) => break (CLOSE_NOT_ACTIVE, "the session is not active"),
            },
            _ = ping.tick() => {
                if !socket.ping().await {
                    break (close_code::AWAY, "no answer");
                }
            }
            received = socket.recv() => match received {
                Received::Gone => return,
                Received::Failed => break (CLOSE_BAD_FRAME, "unreadable or too large frame"),
                Received::Text(_) | Received::Binary => {
                    break socket.bad("the agent's view is read-only")
                }
            },
        }
    };
    socket.close(code, reason).await;
}

fn closing_reason(code: u16) -> (u16, &'static str) {
    if code == CLOSE_GOING_AWAY {
        (code, "the broker is shutting down")
    } else {
        (code, "the session is not active")
    }
}

fn to_text(frame: &Down) -> Utf8Bytes {
    // Plain data: writing it out cannot fail.
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// Ticks every [`PING_INTERVAL`], the first one an interval from now.
fn pinger() -> Interval {
    let mut ping = interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping
}

/// What came from the peer.
enum Received {
    Text(Utf8Bytes),
    Binary,
    /// The peer closed the connection (or it dropped).
    Gone,
    /// A frame the WebSocket layer refused: too large, not UTF-8 text, …
    Failed,
}

/// One side of a mirror socket: capture, liveness and closing.
struct Socket {
    ws: WebSocket,
    capture: Option<Arc<Capture>>,
    session_id: String,
    side: &'static str,
    /// When the peer last sent anything, pongs included.
    heard: Instant,
}

impl Socket {
    fn new(ws: WebSocket, state: &AppState, session_id: &str, side: &'static str) -> Self {
        Self {
            ws,
            capture: state.mirror_capture.clone(),
            session_id: session_id.to_owned(),
            side,
            heard: Instant::now(),
        }
    }

    /// The next text or binary frame. Cancel-safe: a frame is either
    /// returned or was never read.
    async fn recv(&mut self) -> Received {
        loop {
            let message = match self.ws.recv().await {
                None => return Received::Gone,
                Some(Err(e)) => {
                    tracing::debug!(
                        error = %e, session_id = %self.session_id, side = self.side,
                        "mirror: socket failed"
                    );
                    return Received::Failed;
                }
                Some(Ok(message)) => message,
            };
            self.heard = Instant::now();
            match message {
                Message::Text(text) => {
                    self.record(text.as_str().as_bytes());
                    return Received::Text(text);
                }
                Message::Binary(data) => {
                    self.record(&data);
                    return Received::Binary;
                }
                // The WebSocket layer answers pings and closes by itself (a
                // closed stream then ends); pongs only say the peer is there.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) => {}
            }
        }
    }

    /// The first frame, if it comes within [`HELLO_TIMEOUT`].
    async fn first(&mut self) -> Option<Received> {
        tokio::time::timeout(HELLO_TIMEOUT, self.recv()).await.ok()
    }

    fn record(&self, payload: &[u8]) {
        if let Some(capture) = &self.capture {
            capture.record(payload);
        }
    }

    /// The session, read again now that the socket is open; `None` once the
    /// socket is closed because it cannot be read.
    async fn session(&mut self, state: &AppState) -> Option<Session> {
        match state.session(&self.session_id).await {
            Ok(Some(session)) => Some(session),
            Ok(None) => {
                self.send_close(CLOSE_NOT_ACTIVE, "no such session").await;
                None
            }
            Err(e) => {
                tracing::error!(
                    error = %e, session_id = %self.session_id,
                    "mirror: reading the session failed"
                );
                self.send_close(close_code::ERROR, "internal error").await;
                None
            }
        }
    }

    async fn send(&mut self, text: Utf8Bytes) -> bool {
        self.ws.send(Message::Text(text)).await.is_ok()
    }

    /// Pings the peer; false if it has been silent too long or is gone.
    async fn ping(&mut self) -> bool {
        if self.heard.elapsed() > SILENCE_LIMIT {
            tracing::info!(
                session_id = %self.session_id, side = self.side,
                "mirror: peer silent, closing"
            );
            return false;
        }
        self.ws
            .send(Message::Ping(Default::default()))
            .await
            .is_ok()
    }

    /// Logs a refused frame (why, never what) and returns its close.
    fn bad(&self, why: &str) -> (u16, &'static str) {
        tracing::warn!(
            session_id = %self.session_id, side = self.side, reason = %why,
            "mirror: frame refused"
        );
        (CLOSE_BAD_FRAME, "frame refused")
    }

    async fn refuse_hello(self) {
        self.close(CLOSE_UNAUTHORIZED, "the first frame must be a hello")
            .await;
    }

    /// Closes with `code`, and waits a little for the peer's answer.
    async fn close(mut self, code: u16, reason: &'static str) {
        self.send_close(code, reason).await;
    }

    async fn send_close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if self.ws.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        // Frames the peer sent before it saw the close are read (and
        // captured) but not acted on.
        let drain = async { while let Received::Text(_) | Received::Binary = self.recv().await {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
    }
}
