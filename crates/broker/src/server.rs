//! The HTTP server loop: accepts connections, serves [`crate::app`] on each
//! with the limits a public service needs, and shuts down without dropping
//! work.
//!
//! # Limits
//!
//! - **Slow or idle clients**: a connection has [`HttpLimits::header_timeout`]
//!   to send a request's headers (and at most that long idle between
//!   requests), then it is closed. A request has
//!   [`HttpLimits::request_timeout`] from its headers to its answer, body
//!   upload included, then it is answered 408 `request_timeout` (see
//!   [`limit_time`]). So a client trickling bytes (slowloris) holds a
//!   connection for seconds, not forever.
//! - **Huge headers**: more than [`MAX_HEADER_BYTES`] of request line and
//!   headers, or more than [`MAX_HEADERS`] header fields, is answered 431
//!   and the connection closed, before any route runs.
//!
//! # Shutdown
//!
//! When the shutdown future completes, the broker drains:
//!
//! 1. event streams and mirror sockets end ([`AppState::close`]), so clients
//!    reconnect elsewhere;
//! 2. requests already being worked on finish normally; every request that
//!    arrives from then on is answered 503 `shutting_down` (see [`admit`]),
//!    and every answer says `Connection: close`;
//! 3. once no request is in flight, or [`HttpLimits::drain`] has passed, the
//!    listener closes and idle connections are closed;
//! 4. [`serve`] returns once every connection is gone, or at the drain
//!    deadline, whichever is first.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_assist_protocol::ErrorCode;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::CONNECTION;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::error::AppError;
use crate::AppState;

/// Most bytes of request line and headers a request may have (431 above).
/// Browsers send 1–4 KiB; a request carrying more is not from the widget,
/// the console or an API client of ours.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most header fields a request may have (431 above).
pub const MAX_HEADERS: usize = 64;

/// The time limits of the HTTP server (`serve --header-timeout-secs`,
/// `--request-timeout-secs`, `--drain-secs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long a connection may take to send a request's headers, and stay
    /// idle between requests.
    pub header_timeout: Duration,
    /// How long a request may take from its headers to its answer, body
    /// included. Event streams and mirror sockets count until they start.
    pub request_timeout: Duration,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Whether the broker is draining, and how many requests are in flight.
#[derive(Debug, Default)]
pub struct Drain {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
}

/// One request in flight; counted until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Drain);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1
            && self.0.draining.load(Ordering::SeqCst)
        {
            self.0.idle.notify_waiters();
        }
    }
}

impl Drain {
    /// Counts a new request in, unless the broker is draining.
    pub fn enter(&self) -> Option<InFlight<'_>> {
        // Counted first, then checked: a request that sees "not draining"
        // is already counted, so the drain waits for it.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let ticket = InFlight(self);
        (!self.is_draining()).then_some(ticket)
    }

    /// True once the shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// How many requests are being worked on.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn begin(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Completes when no request is in flight (call after [`Drain::begin`]).
    async fn idle(&self) {
        loop {
            let mut notified = pin!(self.idle.notified());
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Middleware: answers 503 `shutting_down` once the broker is draining,
/// counts every other request as in flight until its answer is ready, and
/// marks every answer given while draining `Connection: close`.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(_in_flight) = state.drain.enter() else {
        let mut response = AppError::new(
            ErrorCode::ShuttingDown,
            "this broker is shutting down; send the request again",
        )
        .into_response();
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    let mut response = next.run(req).await;
    if state.drain.is_draining() {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Middleware: answers 408 `request_timeout` when a request has not been
/// answered within [`HttpLimits::request_timeout`] (a body sent too slowly,
/// most often). Whatever the route had done stays done or undone as its
/// store transaction decided; nothing is half-written.
pub async fn limit_time(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.http.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request was not complete within {} s",
                state.http.request_timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains as
/// the module documentation says. `state` must be the state `app` was
/// built with.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limits = state.http;
    let (stop, stopping) = watch::channel(false);
    // Counts live connections; each connection task holds a clone.
    let (connections, mut connection_count) = watch::channel(());
    let connections = Arc::new(connections);

    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                accepted_or_pause(accepted, &app, limits, &stopping, &connections).await;
            }
            () = &mut shutdown => break,
        }
    }

    state.drain.begin();
    state.close();
    let deadline = Instant::now() + limits.drain;
    tracing::info!(
        in_flight = state.drain.in_flight(),
        drain_secs = limits.drain.as_secs_f64(),
        "draining: new requests are answered 503"
    );
    // New connections are still served (with 503s) while requests finish.
    {
        let mut idle = pin!(state.drain.idle());
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    accepted_or_pause(accepted, &app, limits, &stopping, &connections).await;
                }
                () = &mut idle => break,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(
                        in_flight = state.drain.in_flight(),
                        "drain deadline passed with requests in flight; they are cut off"
                    );
                    break;
                }
            }
        }
    }
    drop(listener);
    stop.send_replace(true);
    drop(stopping);
    // Every connection task holds a clone of `connections`; once the last is
    // gone the channel's receiver sees it closed.
    drop(connections);
    tokio::select! {
        _ = connection_count.changed() => {}
        () = tokio::time::sleep_until(deadline) => {
            tracing::warn!("drain deadline passed with connections open; closing them");
        }
    }
    Ok(())
}

/// Serves an accepted connection, or after a failed accept (out of file
/// descriptors, most often) pauses briefly so the loop does not spin while
/// the condition lasts.
async fn accepted_or_pause(
    accepted: std::io::Result<(TcpStream, SocketAddr)>,
    app: &Router,
    limits: HttpLimits,
    stopping: &watch::Receiver<bool>,
    connections: &Arc<watch::Sender<()>>,
) {
    match accepted {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(
                stream,
                peer,
                app.clone(),
                limits,
                stopping.clone(),
                Arc::clone(connections),
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Completes once the server tells connections to stop (or is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// One connection, HTTP/1.1 with upgrades (the mirror's WebSockets), until
/// the client closes it or the server stops.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
    _live: Arc<watch::Sender<()>>,
) {
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.oneshot(req.map(Body::new)).await.into_response()) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEADER_BYTES)
        // Above the header limit, so that limit is the one that answers.
        .max_buf_size(2 * MAX_HEADER_BYTES.max(8192));
    let conn = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = stopped(&mut stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        // Clients closing mid-request, header timeouts and parse errors all
        // end here; none is the broker's fault.
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}
