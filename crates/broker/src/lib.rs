//! The Agent Assist broker: issues support codes to visitors' widgets, lets
//! the site's agents redeem them, asks the visitor's consent, and streams
//! each session's state to both sides.
//!
//! # Layout
//!
//! - [`config`]: the command line (`serve`, `agents add|list|revoke`) and the
//!   site file (`[[site]]` with key, name, allowed origins, code lifetime,
//!   secret, consent timeout, redeem limits, auth mode, time zone, shared
//!   pages), checked completely at start-up.
//! - [`routes`]: the HTTP API, one file per resource (`codes`, `sessions`,
//!   `events`, `agent`, `visitors`, `mirror`, `demo`, `health`,
//!   `openapi`), each with its own `router()`.
//! - [`mirror`]: the live mirror of the visitor's page, in memory only:
//!   each active session's latest page and changes, the checks every frame
//!   passes before an agent sees it, the visitor's rate limits, and
//!   `serve --mirror-capture`.
//! - [`identity`]: who the visitor is — each site's auth mode enforced on
//!   code requests, signed identities checked, the visitor as agents see
//!   them ("Web User - MM/DD HH:MM" in the site's time zone).
//! - [`state`]: [`AppState`], and the operations that keep store, hub and
//!   timers in step (a change is committed, then announced).
//! - [`lifecycle`]: the session state machine, one pure function that every
//!   state change is checked against.
//! - [`store`]: the [`store::Store`] trait and its backends
//!   ([`store::sqlite`] now, Redis later): sessions, event logs, tickets,
//!   agents, failed redemptions, visitor records and their merging.
//! - [`hub`]: announces committed events to open event streams
//!   ([`hub::LocalHub`] in process; Redis pub/sub later).
//! - [`timers`]: the per-session consent timer and the periodic sweep.
//! - [`auth`]: who is calling — agents by API token or JWT, devices by token.
//! - [`jwt`]: hand-written HS256 verification of agent JWTs and visitor
//!   identity tokens.
//! - [`limits`]: the failed-redemption limits that make guessing hopeless.
//! - [`admin`]: the `agents` subcommands of the binary.
//! - [`extract`]: the JSON body, bearer and `Origin` checks the routes
//!   share, all failing with [`error::AppError`].
//! - [`cors`]: per-site cross-origin access for the widget.
//! - [`headers`]: the security headers on every answer (CSP and framing
//!   rules for the pages, `no-store` for the API).
//! - [`server`]: the connection loop with its header, size and time
//!   limits, and the draining shutdown (503 for new requests).
//! - [`error`]: [`error::AppError`], the one error type of the HTTP layer,
//!   answered as an `agent_assist_protocol::ApiError` JSON body.
//! - [`secrets`]: codes, ids, tokens, tickets and their hashes.
//! - [`clock`]: wall-clock time and sleeping, replaceable in tests.
//! - [`telemetry`]: logging to stderr.
//!
//! [`app`] builds the router for an [`AppState`] (every API answer carries a
//! `Server-Timing` header, see [`server_timing`]); [`run`] serves it on a
//! listener until a shutdown future completes. The binary (`main.rs`) only
//! parses the command line, sets up logging and calls [`run`] (or
//! [`admin::agents`]).

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod cors;
pub mod error;
pub mod extract;
pub mod headers;
pub mod hub;
pub mod identity;
pub mod jwt;
pub mod lifecycle;
pub mod limits;
pub mod mirror;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod timers;

use std::future::Future;
use std::path::Path;
use std::time::Instant;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::handler::HandlerWithoutStateExt;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, VARY};
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::error::AppError;

pub use crate::state::AppState;
pub use crate::timers::SWEEP_INTERVAL;

/// The whole HTTP application for `state`.
pub fn app(state: AppState) -> Router {
    let mut router = routes::router().method_not_allowed_fallback(error::method_not_allowed);
    if let Some(sdk) = &state.sdk_dir {
        router = router.nest_service("/sdk", sdk_files(sdk));
    }
    if let Some(examples) = &state.examples_dir {
        router = router.nest_service("/examples", static_files(examples));
    }
    router = match &state.www_dir {
        Some(www) => router.fallback_service(static_files(www)),
        None => router.fallback(error::not_found),
    };
    router
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            server::limit_time,
        ))
        // Inside CORS, so a page can read the 503 of a draining broker.
        .layer(middleware::from_fn_with_state(state.clone(), server::admit))
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(middleware::from_fn(access_log))
        .layer(middleware::from_fn(headers::security_headers))
        // Outermost, so the time covers every other layer too.
        .layer(middleware::from_fn(server_timing))
        .with_state(state)
}

const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// Adds `Server-Timing: app;dur=<ms>` to every API answer (`/v1/…`): the
/// time from the request's arrival to the answer's headers, in milliseconds
/// with two decimals. The bench reads it in the browser (Resource Timing's
/// `serverTiming`) to tell the broker's share of click → code visible from
/// the network's and the widget's. Same-origin pages see it as is; no
/// `Timing-Allow-Origin` is sent, so other origins see nothing. For event
/// streams and mirror sockets it is the time to the stream's start.
pub async fn server_timing(req: Request<Body>, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let start = Instant::now();
    let mut response = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    // The header value's bytes are the formatted string itself (no copy).
    if let Ok(value) = HeaderValue::try_from(format!("app;dur={ms:.2}")) {
        response.headers_mut().insert(SERVER_TIMING, value);
    }
    response
}

/// The access log: one line for each answer that is not a success (a
/// refusal, an error, a redirect), at `info`, with method, path, status and
/// time. Successes are not logged here: the routes log what they did at
/// `info` ("code issued", "code redeemed", …), and `RUST_LOG=debug` adds a
/// line for every answer (tower-http's), inside the request's span.
///
/// Why not a span and a line for every request at `info`, as before: under
/// load the span machinery and the second line were a tenth of the
/// broker's CPU (`cargo xtask bench`, `perf`), for lines that repeated the
/// routes' own.
async fn access_log(req: Request<Body>, next: Next) -> Response {
    // Cheap clones (shared bytes); only the path is logged, never the
    // query, where stream tickets travel.
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let start = Instant::now();
    let response = next.run(req).await;
    if !response.status().is_success() {
        tracing::info!(
            %method,
            path = uri.path(),
            status = response.status().as_u16(),
            latency_ms = start.elapsed().as_millis(),
            "answered"
        );
    }
    response
}

/// The span (at `debug`) every request's log lines are in: method and path only. Never
/// the query (stream tickets travel there) and never headers (bearer
/// credentials do), so a log can be shared without leaking access.
fn request_span(req: &Request<Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
}

/// Files from `dir`, `/` meaning `index.html`; misses are answered in JSON
/// like every other error. The content type comes from the file name
/// (`.wasm` is `application/wasm`, which streaming compilation requires).
fn static_files(dir: &Path) -> Router {
    Router::new().fallback_service(
        ServeDir::new(dir)
            .call_fallback_on_method_not_allowed(true)
            .fallback(static_miss.into_service()),
    )
}

/// A request for no file of a static directory.
async fn static_miss(method: Method) -> AppError {
    if method == Method::GET || method == Method::HEAD {
        AppError::not_found()
    } else {
        AppError::method_not_allowed()
    }
}

/// The SDK bundle under `/sdk/`: what a site's script tag loads from the
/// broker's origin, which is not the site's. The script tag itself needs no
/// CORS, but what it loads does: the boot wasm comes through `fetch`, and
/// the widget, co-browsing and console modules through `import()`, both
/// cross-origin requests the browser refuses to hand to the page without
/// `Access-Control-Allow-Origin`. These are public files, the same for
/// everyone and sent without credentials, so any origin may read them (`*`),
/// and `Cross-Origin-Resource-Policy: cross-origin` lets pages that isolate
/// themselves (COEP) load them too.
///
/// The names carry no version, and the modules of one build only work with
/// each other, so a browser revalidates before each use (`no-cache`: a 304
/// with no body when nothing changed) rather than risk mixing two builds.
/// `cargo xtask build` writes a gzip copy beside each file; a browser that
/// accepts gzip gets it (`Content-Encoding: gzip`, `Vary: Accept-Encoding`).
fn sdk_files(dir: &Path) -> Router {
    async fn public(mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Which file was sent depends on the request's Accept-Encoding.
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        response
    }
    Router::new()
        .fallback_service(
            ServeDir::new(dir)
                .precompressed_gzip()
                .call_fallback_on_method_not_allowed(true)
                .fallback(static_miss.into_service()),
        )
        .layer(middleware::map_response(public))
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then
/// drains (see [`server`]): requests in flight finish, new ones are
/// answered 503, all within the state's drain limit. Open event streams and
/// mirror sockets end as soon as `shutdown` completes (streams would
/// otherwise keep the shutdown waiting), and so do the consent timers. Also
/// runs the periodic sweep.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(timers::sweep_periodically(state.clone()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, sites = state.config.sites().count(), "broker started");
    }
    if state.demo_login {
        tracing::warn!(
            "DEMO LOGIN IS ON (--demo-login): POST /demo/login signs identities for made-up \
             users with the site's secret, for anyone who asks. Never use it in production."
        );
    }
    if let Some(capture) = &state.mirror_capture {
        tracing::warn!(
            path = %capture.path().display(),
            "MIRROR CAPTURE IS ON (--mirror-capture): every frame the mirror sockets receive, \
             page content and credentials included, is appended to this file. Keep it safe."
        );
    }
    let served = server::serve(listener, app(state.clone()), state.clone(), shutdown).await;
    state.close();
    sweeper.abort();
    tracing::info!("broker stopped");
    served
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
///
/// The handlers are installed when this function is called, not when the
/// future is first polled: the binary calls it before it announces that it
/// is listening, so a signal sent right after that line is never lost (and
/// never kills the process with the default action).
#[cfg(unix)]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let (mut interrupt, mut terminate) = match (interrupt, terminate) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM");
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received, shutting down");
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    /// The bench reads the broker's share of click → code visible from this
    /// header; static files (the SDK bundle, pages) do not carry it.
    #[tokio::test]
    async fn api_answers_carry_server_timing_and_static_files_do_not() {
        let app = Router::new()
            .route("/v1/codes", get(|| async { "code" }))
            .route("/sdk/agent-assist.js", get(|| async { "js" }))
            .layer(middleware::from_fn(server_timing));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let api = reqwest::get(format!("{url}/v1/codes")).await.unwrap();
        let timing = api.headers()["server-timing"].to_str().unwrap();
        let ms = timing.strip_prefix("app;dur=").unwrap();
        assert_eq!(
            ms.split_once('.').map(|(_, d)| d.len()),
            Some(2),
            "{timing}"
        );
        assert!(ms.parse::<f64>().unwrap() >= 0.0, "{timing}");

        let js = reqwest::get(format!("{url}/sdk/agent-assist.js"))
            .await
            .unwrap();
        assert!(js.headers().get("server-timing").is_none());
    }
}
