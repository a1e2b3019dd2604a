//! The Agent Assist broker: issues support codes to visitors' widgets and
//! tracks the support sessions they start.
//!
//! # Layout
//!
//! - [`config`]: the command line and the site file (`[[site]]` with key,
//!   name, allowed origins, code lifetime), checked completely at start-up.
//! - [`routes`]: the HTTP API, one file per resource (`codes`, `sessions`,
//!   `health`), each with its own `router()`.
//! - [`extract`]: the JSON body, bearer token and `Origin` checks the routes
//!   share, all failing with [`error::AppError`].
//! - [`cors`]: per-site cross-origin access for the widget.
//! - [`error`]: [`error::AppError`], the one error type of the HTTP layer,
//!   answered as an `agent_assist_protocol::ApiError` JSON body.
//! - [`store`]: the [`store::Store`] trait and its backends
//!   ([`store::sqlite`] now, Redis later).
//! - [`secrets`]: codes, session ids, device tokens and their hashes.
//! - [`clock`]: wall-clock time, replaceable in tests.
//! - [`telemetry`]: logging to stderr.
//!
//! [`app`] builds the router for an [`AppState`]; [`run`] serves it on a
//! listener until a shutdown future completes. The binary (`main.rs`) only
//! parses the command line, sets up logging and calls [`run`].

pub mod clock;
pub mod config;
pub mod cors;
pub mod error;
pub mod extract;
pub mod routes;
pub mod secrets;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::HandlerWithoutStateExt;
use axum::http::Method;
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::AppError;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// How often expired codes are ended in the background. Expiry is also
/// applied whenever a session is read, so this only bounds how long a dead
/// row keeps its code hash; it does not decide when a code stops working.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// What every request handler can reach. Cloning is cheap (a few `Arc`s).
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Static pages served at `/`, if any.
    pub www_dir: Option<PathBuf>,
    /// The script-tag bundle served at `/sdk/`, if any.
    pub sdk_dir: Option<PathBuf>,
    /// Integration examples served at `/examples/`, if any (the demo's).
    pub examples_dir: Option<PathBuf>,
}

impl AppState {
    /// State over any store.
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            config: Arc::new(config),
            store,
            clock,
            www_dir: None,
            sdk_dir: None,
            examples_dir: None,
        }
    }

    /// State over the SQLite file at `db_path`, created if it does not exist.
    pub fn open(config: Config, db_path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let store = SqliteStore::open(db_path)?;
        Ok(Self::new(config, Arc::new(store), clock))
    }

    /// Also serve the static pages in `dir` at `/`.
    #[must_use]
    pub fn with_www(mut self, dir: impl Into<PathBuf>) -> Self {
        self.www_dir = Some(dir.into());
        self
    }

    /// Also serve the script-tag bundle in `dir` at `/sdk/`.
    #[must_use]
    pub fn with_sdk(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sdk_dir = Some(dir.into());
        self
    }

    /// Also serve the integration examples in `dir` at `/examples/`.
    #[must_use]
    pub fn with_examples(mut self, dir: impl Into<PathBuf>) -> Self {
        self.examples_dir = Some(dir.into());
        self
    }

    /// The id of the session holding `code` for `site_key`, if the code is
    /// live now (by this state's clock).
    pub async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .find_live_code(site_key, code, self.clock.now_ms())
            .await
    }
}

/// The whole HTTP application for `state`.
pub fn app(state: AppState) -> Router {
    let mut router = routes::router().method_not_allowed_fallback(error::method_not_allowed);
    if let Some(sdk) = &state.sdk_dir {
        router = router.nest_service("/sdk", static_files(sdk));
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
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// Files from `dir`, `/` meaning `index.html`; misses are answered in JSON
/// like every other error. The content type comes from the file name
/// (`.wasm` is `application/wasm`, which streaming compilation requires).
fn static_files(dir: &Path) -> Router {
    async fn miss(method: Method) -> AppError {
        if method == Method::GET || method == Method::HEAD {
            AppError::not_found()
        } else {
            AppError::method_not_allowed()
        }
    }
    Router::new().fallback_service(
        ServeDir::new(dir)
            .call_fallback_on_method_not_allowed(true)
            .fallback(miss.into_service()),
    )
}

/// Serves `app(state)` on `listener` until `shutdown` completes, then lets
/// requests in flight finish. Also runs the periodic expiry sweep.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep_expired_codes(state.clone()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, sites = state.config.sites().count(), "broker started");
    }
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    tracing::info!("broker stopped");
    served
}

/// Ends expired pending sessions every [`SWEEP_INTERVAL`].
async fn sweep_expired_codes(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.store.sweep_expired(state.clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired codes swept"),
            Err(e) => tracing::error!(error = %e, "sweeping expired codes failed"),
        }
    }
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
