//! Shared by the API tests: a real broker on `127.0.0.1:0` over a temporary
//! SQLite file (or, with `AGENT_ASSIST_TEST_STORE=redis`, a Redis server
//! of the test's own: see [`redis`]), with a clock the test moves.

#![allow(dead_code)] // Each test file uses a different part of these helpers.

pub mod process;
pub mod redis;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agent_assist_broker::clock::{Clock, ManualClock};
use agent_assist_broker::config::Config;
use agent_assist_broker::secrets::{hash_token, new_agent_id, new_api_token};
use agent_assist_broker::store::redis::RedisStore;
use agent_assist_broker::store::sqlite::SqliteStore;
use agent_assist_broker::store::{NewAgent, Store};
use agent_assist_broker::{jwt, run, AppState};
use agent_assist_protocol::{
    ApiError, CreateCodeResponse, ErrorCode, RedeemResponse, SessionStatus, StreamTicket,
};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An origin the `demo` site allows.
pub const DEMO_ORIGIN: &str = "http://localhost:8080";
/// An origin only the `short` site allows.
pub const SHORT_ORIGIN: &str = "https://short.example";
/// An origin no site allows.
pub const EVIL_ORIGIN: &str = "https://evil.example";

/// The `demo` site's secret, which signs its agents' JWTs.
pub const DEMO_SECRET: &str = "demo-secret-0123456789abcdef-0123456789";

/// The manual clock's start: 2023-11-14 22:13:20 UTC.
pub const T0: u64 = 1_700_000_000_000;

pub const SITES: &str = r#"
[[site]]
key = "demo"
name = "Demo Shop"
allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]
secret = "demo-secret-0123456789abcdef-0123456789"
share_pages = ["/*", "!/account/*"]
# The tests make many codes from one address and visitor; the creation
# limits have a site of their own below.
[site.create_limits]
visitor_live = 0
visitor_per_minute = 0
address_live = 0
address_per_minute = 0

# Small creation limits, on an origin of its own.
[[site]]
key = "limited"
name = "Few Codes"
allowed_origins = ["https://limited.example"]
[site.create_limits]
visitor_live = 2
visitor_per_minute = 3
address_live = 4
address_per_minute = 6
site_live = 12

[[site]]
key = "short"
name = "Short Lived"
allowed_origins = ["https://short.example"]
code_lifetime_secs = 60

# Default agent limits, but the site locks after 6 failures.
[[site]]
key = "strict"
name = "Strict Limits"
allowed_origins = []
[site.redeem_limits]
site_max = 6

# 2 failures a minute, 5 a day, no site lock to speak of.
[[site]]
key = "daily"
name = "Daily Cap"
allowed_origins = []
[site.redeem_limits]
agent_max = 2
agent_window_secs = 60
agent_daily_max = 5
site_max = 1000

# Name and email required before a code is made.
[[site]]
key = "form"
name = "Form Required"
allowed_origins = []
auth_mode = "form"

# The same form, optional.
[[site]]
key = "optional"
name = "Form Optional"
allowed_origins = []
auth_mode = "optional-form"

# Only signed-in users, verified with the site's secret; agents in Paris.
[[site]]
key = "login"
name = "Members Only"
allowed_origins = []
auth_mode = "code"
time_zone = "Europe/Paris"
secret = "login-secret-0123456789abcdef-0123456789"
"#;

/// The `login` site's secret, which signs its visitors' identities.
pub const LOGIN_SECRET: &str = "login-secret-0123456789abcdef-0123456789";

/// State as `serve --store redis://…` makes it: the store and the hub.
async fn redis_state(url: &str, clock: &Arc<ManualClock>) -> AppState {
    let store: Arc<dyn Store> = Arc::new(RedisStore::open(url).await.expect("Redis store opens"));
    AppState::new(config(), store, Arc::clone(clock) as Arc<dyn Clock>)
        .with_redis_replicas(url)
        .await
        .expect("events and mirrors are shared over Redis")
}

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
        let clock = Arc::new(ManualClock::new(T0));
        let mut broker = Self::start_on(&db, clock, |s| s).await;
        broker._dir = Some(dir);
        broker
    }

    /// A broker like [`Broker::start`] whose state `tweak` may change
    /// (static folders, the demo login).
    pub async fn start_with(tweak: impl FnOnce(AppState) -> AppState) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("broker.sqlite3");
        let clock = Arc::new(ManualClock::new(T0));
        let mut broker = Self::start_on(&db, clock, tweak).await;
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
        let state = if redis::enabled() {
            redis_state(&redis::server_for(db).url(), &clock).await
        } else {
            let store = SqliteStore::open(db).expect("database opens");
            AppState::new(
                config(),
                Arc::new(store),
                Arc::clone(&clock) as Arc<dyn Clock>,
            )
        };
        Self::serve(tweak(state), clock, db).await
    }

    /// A broker over the Redis at `url`, as one replica of several (each
    /// with its own clock: give them the same one).
    pub async fn start_redis(url: &str, clock: Arc<ManualClock>) -> Self {
        let state = redis_state(url, &clock).await;
        Self::serve(state, clock, Path::new("/nonexistent/redis-replica")).await
    }

    async fn serve(state: AppState, clock: Arc<ManualClock>, db: &Path) -> Self {
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

    /// Tells the server to shut down without waiting for it (then
    /// [`Broker::stop`] waits).
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
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

    /// Every visitor record the store holds, whichever the backend: `id`,
    /// `site_key`, `visitor_id` and `user_id` (null when unset).
    pub fn visitor_records(&self) -> Vec<serde_json::Value> {
        if redis::enabled() {
            let mut conn = self.redis_connection();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg("aa:*:v:*")
                .query(&mut conn)
                .unwrap();
            keys.iter()
                .map(|k| {
                    let rec: String = ::redis::cmd("HGET").arg(k).arg("rec").query(&mut conn).unwrap();
                    let v: serde_json::Value = serde_json::from_str(&rec).unwrap();
                    json!({ "id": v["id"], "site_key": v["site"], "visitor_id": v["visitor_id"], "user_id": v["user_id"] })
                })
                .collect()
        } else {
            let conn = rusqlite::Connection::open(&self.db).unwrap();
            let mut st = conn
                .prepare("SELECT id, site_key, visitor_id, user_id FROM visitors")
                .unwrap();
            st.query_map([], |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "site_key": r.get::<_, String>(1)?,
                    "visitor_id": r.get::<_, Option<String>>(2)?,
                    "user_id": r.get::<_, Option<String>>(3)?,
                }))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        }
    }

    /// How many sessions belong to the visitor record `id`.
    pub fn sessions_of_record(&self, id: &str) -> usize {
        if redis::enabled() {
            let mut conn = self.redis_connection();
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg("aa:*:sess:*")
                .query(&mut conn)
                .unwrap();
            keys.iter()
                .filter(|k| {
                    let vis: Option<String> = ::redis::cmd("HGET")
                        .arg(*k)
                        .arg("vis")
                        .query(&mut conn)
                        .unwrap();
                    vis.as_deref() == Some(id)
                })
                .count()
        } else {
            let conn = rusqlite::Connection::open(&self.db).unwrap();
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sessions WHERE visitor = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            n.unsigned_abs() as usize
        }
    }

    /// The key codes are hashed with, as the store keeps it.
    pub fn code_secret(&self) -> Vec<u8> {
        if redis::enabled() {
            let hex_key: String = ::redis::cmd("GET")
                .arg("aa:secret")
                .query(&mut self.redis_connection())
                .unwrap();
            hex::decode(hex_key).unwrap()
        } else {
            let conn = rusqlite::Connection::open(&self.db).unwrap();
            conn.query_row(
                "SELECT value FROM meta WHERE key = 'code_secret'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        }
    }

    /// A plain connection to the test's Redis (Redis runs only).
    pub fn redis_connection(&self) -> ::redis::Connection {
        ::redis::Client::open(redis::server_for(&self.db).url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Records an agent of `site` with an API token, as `agents add` does;
    /// returns the agent's id and token.
    pub async fn add_agent(&self, site: &str, name: &str) -> (String, String) {
        let (id, token) = (new_agent_id(), new_api_token());
        self.state
            .store
            .add_agent(NewAgent {
                id: id.clone(),
                site_key: site.into(),
                name: name.into(),
                token_hash: hash_token(&token),
                created_at: self.clock.now_ms(),
            })
            .await
            .expect("agent added");
        (id, token)
    }

    /// A JWT for agent `sub` of `site`, signed with `secret`, valid for
    /// `lifetime_secs` from the broker's clock.
    pub fn jwt(&self, site: &str, sub: &str, name: &str, lifetime_secs: i64) -> String {
        let now = self.clock.now_ms() / 1000;
        let exp = now.saturating_add_signed(lifetime_secs);
        jwt::encode(
            &json!({ "sub": sub, "name": name, "site": site, "exp": exp, "iat": now }),
            DEMO_SECRET.as_bytes(),
        )
    }

    /// `POST path` with `credential` and a JSON `body`.
    pub async fn post_json(
        &self,
        path: &str,
        credential: &str,
        body: serde_json::Value,
    ) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(credential)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// `POST path` with `credential` and no body.
    pub async fn post_empty(&self, path: &str, credential: &str) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(credential)
            .send()
            .await
            .expect("request")
    }

    /// `POST /v1/agent/redeem` with `credential`.
    pub async fn post_redeem(&self, credential: &str, code: &str) -> Response {
        self.post_json("/v1/agent/redeem", credential, json!({ "code": code }))
            .await
    }

    /// `POST /v1/agent/redeem`, expecting success.
    pub async fn redeem(&self, credential: &str, code: &str) -> RedeemResponse {
        let res = self.post_redeem(credential, code).await;
        assert_eq!(res.status(), StatusCode::OK, "redeem");
        res.json().await.expect("RedeemResponse body")
    }

    /// `POST /v1/sessions/{id}/consent`.
    pub async fn post_consent(&self, id: &str, credential: &str, allow: bool) -> Response {
        self.post_json(
            &format!("/v1/sessions/{id}/consent"),
            credential,
            json!({ "allow": allow }),
        )
        .await
    }

    /// `POST /v1/sessions/{id}/end`.
    pub async fn post_end(&self, id: &str, credential: &str) -> Response {
        self.post_empty(&format!("/v1/sessions/{id}/end"), credential)
            .await
    }

    /// `POST /v1/sessions/{id}/ticket`, expecting success.
    pub async fn ticket(&self, id: &str, credential: &str) -> String {
        let res = self
            .post_empty(&format!("/v1/sessions/{id}/ticket"), credential)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "ticket");
        let t: StreamTicket = res.json().await.expect("StreamTicket body");
        assert_eq!(t.expires_in, 300);
        t.ticket
    }

    /// `GET /v1/sessions/{id}/events?ticket=…`, optionally resuming after
    /// `last_event_id` (sent as the `Last-Event-ID` header).
    pub async fn get_events(&self, id: &str, ticket: &str, last_event_id: Option<u64>) -> Response {
        let mut req = self
            .client
            .get(self.url(&format!("/v1/sessions/{id}/events")))
            .query(&[("ticket", ticket)]);
        if let Some(last) = last_event_id {
            req = req.header("last-event-id", last.to_string());
        }
        req.send().await.expect("request")
    }

    /// An open event stream, checked for its status and content type.
    pub async fn events(&self, id: &str, ticket: &str, last_event_id: Option<u64>) -> SseStream {
        let res = self.get_events(id, ticket, last_event_id).await;
        assert_eq!(res.status(), StatusCode::OK, "events");
        assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
        SseStream::new(res)
    }

    /// A code of `site` redeemed by a fresh agent: `(created, agent token, redeemed)`.
    pub async fn authorizing(&self, site: &str) -> (CreateCodeResponse, String, RedeemResponse) {
        let created = self.create(site).await;
        let (_, token) = self.add_agent(site, "Dana").await;
        let redeemed = self.redeem(&token, &created.code).await;
        (created, token, redeemed)
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

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn status(&self) -> SessionStatus {
        serde_json::from_str(&self.data).expect("event data is a SessionStatus")
    }

    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .expect("event has an id")
            .parse()
            .unwrap()
    }
}

/// Reads an event stream as a browser would, block by block.
pub struct SseStream {
    res: Response,
    buf: String,
    /// The last `retry:` the server sent, in milliseconds.
    pub retry: Option<u64>,
    /// How many comment lines (keep-alives) were seen.
    pub comments: usize,
}

impl SseStream {
    pub fn new(res: Response) -> Self {
        Self {
            res,
            buf: String::new(),
            retry: None,
            comments: 0,
        }
    }

    /// The next event; `None` when the server closed the stream. Fails the
    /// test if nothing comes within ten seconds.
    pub async fn next(&mut self) -> Option<SseEvent> {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event or the end of the stream within 10 s")
    }

    /// The next event, or `Err(())` if none came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<SseEvent>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut has_data = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "id" => event.id = Some(value.to_owned()),
                        "event" => event.event = Some(value.to_owned()),
                        "retry" => self.retry = value.parse().ok(),
                        "data" => {
                            if has_data {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                            has_data = true;
                        }
                        _ => {}
                    }
                }
                if has_data {
                    return Ok(Some(event));
                }
            }
            match tokio::time::timeout_at(deadline, self.res.chunk()).await {
                Err(_) => return Err(()),
                Ok(Ok(Some(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) => return Ok(None),
                Ok(Err(e)) => panic!("stream failed: {e}"),
            }
        }
    }

    /// Asserts that the server closes the stream without another event.
    pub async fn assert_closed(&mut self) {
        assert_eq!(self.next().await, None, "the stream should have closed");
    }
}

/// A token with any header and claims, signed with `secret`: for tests of
/// tokens the broker must refuse (wrong algorithm, forged, expired…).
pub fn forge(header: &serde_json::Value, claims: &serde_json::Value, secret: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}
