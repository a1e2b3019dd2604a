//! Shared by the API tests: a real broker on `127.0.0.1:0` over a temporary
//! SQLite file, with a clock the test moves.

#![allow(dead_code)] // Each test file uses a different part of these helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_assist_broker::clock::{Clock, ManualClock};
use agent_assist_broker::config::Config;
use agent_assist_broker::{run, AppState};
use agent_assist_protocol::{ApiError, CreateCodeResponse, ErrorCode, SessionStatus};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An origin the `demo` site allows.
pub const DEMO_ORIGIN: &str = "http://localhost:8080";
/// An origin only the `short` site allows.
pub const SHORT_ORIGIN: &str = "https://short.example";
/// An origin no site allows.
pub const EVIL_ORIGIN: &str = "https://evil.example";

pub const SITES: &str = r#"
[[site]]
key = "demo"
name = "Demo Shop"
allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]

[[site]]
key = "short"
name = "Short Lived"
allowed_origins = ["https://short.example"]
code_lifetime_secs = 60
"#;

pub fn config() -> Config {
    Config::from_toml(SITES).expect("test config is valid")
}

/// A broker serving on a random port.
pub struct Broker {
    pub base: String,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    pub db: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    // Keeps the temporary folder (and the database in it) alive.
    _dir: Option<tempfile::TempDir>,
}

impl Broker {
    /// A broker with the test sites over a fresh database.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("broker.sqlite3");
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let mut broker = Self::start_on(&db, clock, |s| s).await;
        broker._dir = Some(dir);
        broker
    }

    /// A broker over the database at `db`, with `clock`; `tweak` may add
    /// static folders to the state.
    pub async fn start_on(
        db: &Path,
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let state = tweak(
            AppState::open(config(), db, Arc::clone(&clock) as Arc<dyn Clock>)
                .expect("database opens"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Self {
            base,
            state,
            clock,
            client: reqwest::Client::new(),
            db: db.to_owned(),
            shutdown: Some(tx),
            server: Some(server),
            _dir: None,
        }
    }

    /// Shuts the server down gracefully and waits for it; returns the
    /// temporary folder so the database outlives the server.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        self._dir.take()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /v1/codes` for `site`, expecting success.
    pub async fn create(&self, site: &str) -> CreateCodeResponse {
        let res = self
            .client
            .post(self.url("/v1/codes"))
            .json(&serde_json::json!({ "site_key": site }))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::CREATED);
        res.json().await.expect("CreateCodeResponse body")
    }

    /// `GET /v1/sessions/{id}` with `token`.
    pub async fn get_status(&self, id: &str, token: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/sessions/{id}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `GET /v1/sessions/{id}`, expecting success.
    pub async fn status(&self, id: &str, token: &str) -> SessionStatus {
        let res = self.get_status(id, token).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.expect("SessionStatus body")
    }

    /// `POST /v1/sessions/{id}/cancel` with `token`.
    pub async fn post_cancel(&self, id: &str, token: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/sessions/{id}/cancel")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn live(&self, site: &str, code: &str) -> Option<String> {
        self.state
            .find_live_code(site, code)
            .await
            .expect("store answers")
    }

    pub async fn count_sessions(&self) -> u64 {
        self.state
            .store
            .count_sessions()
            .await
            .expect("store answers")
    }
}

/// Asserts that `res` is the JSON error `code` with its status, and returns
/// the message.
pub async fn assert_refused(res: Response, code: ErrorCode) -> String {
    assert_eq!(res.status().as_u16(), code.status(), "status for {code:?}");
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?} for {code:?}"
    );
    let body: ApiError = res.json().await.expect("ApiError body");
    assert_eq!(body.error, code, "{}", body.message);
    assert!(!body.message.is_empty());
    body.message
}
