//! The broker's store-level figures for `cargo xtask bench`. Each command
//! prints one JSON object on stdout, which the xtask reads; the broker's own
//! log lines go to stderr, as the broker's do.
//!
//! - `store-rate DIR SECS`: the raw SQLite rate of the broker's write — one
//!   `sessions` row per `BEGIN IMMEDIATE … COMMIT`, a prepared statement,
//!   the store's own schema, pragmas (WAL, `synchronous=NORMAL`) and
//!   checkpointing (`sqlite::open_writer`: a checkpoint thread, the same
//!   WAL bound) — and beside it the rate of the store's whole code
//!   transaction (`Store::create_session`: code check, visitor record,
//!   session, first event, stream ticket), serial, without HTTP. Serial
//!   calls never share a commit, so this row shows what one code costs
//!   the store on its own; the broker's HTTP rows show what group commit
//!   makes of many at once. The raw rate stays one row per commit: it is
//!   the bar the issue sets, not something the store's batching may move.
//! - `code-space DIR ISSUES PROBES`: how long the broker takes to issue a
//!   code for one site while 10 %, 50 %, 90 % and 99 % of its million codes
//!   are live (`ISSUES` codes at each level), and how long the
//!   `503 no_free_codes` answer takes at 99.99 % and 100 % (`PROBES`
//!   requests each). Requests go through the whole application called in
//!   process — router, middleware, the handler (which hands the store
//!   `MAX_CODE_ATTEMPTS` candidate codes in one call), the store — without
//!   a socket, so the time is the broker's alone. Beside it, the allocation
//!   alone: the store's `choose_code` (the candidate loop the code request
//!   runs inside its transaction), timed without the commit. The code
//!   space is filled with bulk inserts of pending sessions (the rows a
//!   code request makes, in transactions of 100,000), which takes seconds
//!   where a million requests would take minutes.
//!
//! `cargo run --release -p agent-assist-broker --example store_bench -- store-rate /tmp/bench 3`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agent_assist_broker::clock::SystemClock;
use agent_assist_broker::config::{Config, CreateLimits, Site, MAX_CODE_LIFETIME_SECS};
use agent_assist_broker::routes::codes::MAX_CODE_ATTEMPTS;
use agent_assist_broker::secrets::{
    fill_random, hash_token, new_device_token, new_session_id, new_stream_ticket, random_codes,
    ticket_key, CodeHasher, CODE_SECRET_LEN, CODE_SPACE,
};
use agent_assist_broker::store::sqlite::{self, SqliteStore, WalLimits};
use agent_assist_broker::store::{CreateOutcome, NewSession, Store, VisitorClaim};
use agent_assist_broker::{app, telemetry, AppState};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Value};
use tower::ServiceExt;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The one site of the code-space run.
const SITE: &str = "bench";

/// The broker's own insert (`SqliteStore::create_session`), word for word.
const INSERT_SESSION: &str = "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, \
     end_reason, visitor_name, visitor_email, created_at, expires_at, visitor) \
     VALUES (?1, ?2, ?3, ?4, 'pending', NULL, ?5, ?6, ?7, ?8, ?9)";

const USAGE: &str = "usage: store_bench store-rate DIR SECS | code-space DIR ISSUES PROBES";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["store-rate", dir, secs] => match secs.parse() {
            Ok(secs) => store_rate(Path::new(dir), secs).await,
            Err(_) => Err(USAGE.into()),
        },
        ["code-space", dir, issues, probes] => match (issues.parse(), probes.parse()) {
            (Ok(issues), Ok(probes)) => code_space(Path::new(dir), issues, probes).await,
            _ => Err(USAGE.into()),
        },
        _ => Err(USAGE.into()),
    };
    match out {
        Ok(value) => println!("{value}"),
        Err(e) => {
            eprintln!("store_bench: {e}");
            std::process::exit(1);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn code(n: u32) -> String {
    format!("{n:06}")
}

/// The store's code-hashing secret, read from its file (the store has made
/// the schema and the secret already, as a broker's first start does).
fn hasher_of(conn: &Connection) -> Result<CodeHasher> {
    let secret: Vec<u8> = conn.query_row(
        "SELECT value FROM meta WHERE key = 'code_secret'",
        [],
        |r| r.get(0),
    )?;
    let secret: [u8; CODE_SECRET_LEN] = secret
        .try_into()
        .map_err(|_| "the code secret is not 32 bytes")?;
    Ok(CodeHasher::new(&secret))
}

async fn store_rate(dir: &Path, secs: f64) -> Result<Value> {
    std::fs::create_dir_all(dir)?;
    let window = Duration::from_secs_f64(secs);

    // Raw: the broker's session insert alone, one per transaction, with
    // fresh random ids like the broker's, on a fresh file.
    let path = dir.join("raw.sqlite3");
    drop(SqliteStore::open(&path)?);
    // The store's own writer set-up: its pragmas, and its checkpoints on a
    // thread of their own with the same bound.
    let (mut conn, checkpointer) = sqlite::open_writer(&path, WalLimits::default())?;
    let hasher = hasher_of(&conn)?;
    let now = now_ms() as i64;
    let expires = now + i64::from(MAX_CODE_LIFETIME_SECS) * 1000;
    let mut rows = 0u32;
    let mut raw_times = Times::default();
    let started = Instant::now();
    // Codes count up, so none clashes; their hashes land all over the index
    // as random codes' do.
    while rows < CODE_SPACE && started.elapsed() < window {
        let one = Instant::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(INSERT_SESSION)?.execute(params![
            new_session_id(),
            SITE,
            hasher.hash(SITE, &code(rows)),
            hash_token(&new_device_token()),
            None::<String>,
            None::<String>,
            now,
            expires,
            new_session_id(),
        ])?;
        tx.commit()?;
        raw_times.push(one.elapsed());
        rows += 1;
    }
    let raw_secs = started.elapsed().as_secs_f64();
    drop(conn);
    drop(checkpointer);

    // The store's whole code transaction, through its public API.
    let store = SqliteStore::open(dir.join("store.sqlite3"))?;
    let now = now_ms();
    let mut created = 0u32;
    let mut store_times = Times::default();
    let started = Instant::now();
    while created < CODE_SPACE && started.elapsed() < window {
        let one = Instant::now();
        let new = NewSession {
            id: new_session_id(),
            site_key: SITE.into(),
            codes: vec![code(created)],
            token_hash: hash_token(&new_device_token()),
            visitor: VisitorClaim::default(),
            created_at: now,
            expires_at: now + u64::from(MAX_CODE_LIFETIME_SECS) * 1000,
            ticket_key: ticket_key(&new_stream_ticket()),
            ticket_expires_at: now + 300_000,
            // As the broker's answers record it, with the limits off as in
            // the bench's site file.
            address: Some("127.0.0.1".into()),
            limits: CreateLimits::OFF,
        };
        match store.create_session(new).await? {
            CreateOutcome::Created { .. } => {
                store_times.push(one.elapsed());
                created += 1;
            }
            CreateOutcome::CodeTaken => return Err("a counted-up code clashed".into()),
            CreateOutcome::Limited(_) => return Err("a creation limit refused a code".into()),
        }
    }
    let store_secs = started.elapsed().as_secs_f64();

    Ok(json!({
        "raw_inserts": rows,
        "raw_secs": raw_secs,
        "raw_inserts_per_sec": f64::from(rows) / raw_secs,
        "raw_latency": raw_times.summary(),
        "store_creates": created,
        "store_secs": store_secs,
        "store_creates_per_sec": f64::from(created) / store_secs,
        "store_latency": store_times.summary(),
    }))
}

/// Every code of the space once, in a random order: the codes already live
/// at each level are a prefix of it.
fn shuffled_codes() -> Vec<u32> {
    let mut seed = [0u8; 8];
    fill_random(&mut seed);
    let mut state = u64::from_le_bytes(seed);
    // splitmix64: fast, and plenty for picking which codes are taken.
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut codes: Vec<u32> = (0..CODE_SPACE).collect();
    for i in (1..codes.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        codes.swap(i, j);
    }
    codes
}

/// Makes `codes` live for [`SITE`]: pending sessions that expire in a day,
/// as a code request leaves them (without their event, ticket and visitor
/// rows, which the code check never reads).
fn fill(conn: &mut Connection, hasher: &CodeHasher, codes: &[u32]) -> Result<()> {
    let now = now_ms() as i64;
    let expires = now + i64::from(MAX_CODE_LIFETIME_SECS) * 1000;
    let token_hash = hash_token(&new_device_token());
    for chunk in codes.chunks(100_000) {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_SESSION)?;
            for &c in chunk {
                insert.execute(params![
                    new_session_id(),
                    SITE,
                    hasher.hash(SITE, &code(c)),
                    token_hash,
                    None::<String>,
                    None::<String>,
                    now,
                    expires,
                    None::<String>,
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(())
}

/// Removes what the timed requests made (their sessions are the only ones
/// with a visitor record), so each level starts from exactly its share.
fn forget_issued(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "BEGIN;
         DELETE FROM session_events WHERE session_id IN
             (SELECT id FROM sessions WHERE site_key = '{SITE}' AND visitor IS NOT NULL);
         DELETE FROM stream_tickets WHERE session_id IN
             (SELECT id FROM sessions WHERE site_key = '{SITE}' AND visitor IS NOT NULL);
         DELETE FROM sessions WHERE site_key = '{SITE}' AND visitor IS NOT NULL;
         DELETE FROM visitors WHERE site_key = '{SITE}';
         COMMIT;"
    ))?;
    Ok(())
}

fn live_codes(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM sessions WHERE site_key = ?1 AND code_hash IS NOT NULL",
        [SITE],
        |r| r.get(0),
    )?;
    Ok(n.unsigned_abs())
}

/// Durations, summarised as percentiles in microseconds.
#[derive(Default)]
struct Times(Vec<Duration>);

impl Times {
    fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    fn summary(&self) -> Value {
        let mut t = self.0.clone();
        if t.is_empty() {
            return json!({ "count": 0 });
        }
        t.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let pct = |p: f64| us(t[((t.len() - 1) as f64 * p).round() as usize]);
        json!({
            "count": t.len(),
            "p50_us": pct(0.50),
            "p99_us": pct(0.99),
            "max_us": pct(1.0),
            "mean_us": t.iter().map(|d| us(*d)).sum::<f64>() / t.len() as f64,
        })
    }
}

/// `n` code requests, one after the other, each timed from the request to
/// the last byte of its answer: all of them, and apart those that got a
/// code and those answered `no_free_codes`.
async fn issue(app: &Router, n: usize) -> Result<Value> {
    let body = format!(r#"{{"site_key":"{SITE}"}}"#);
    let (mut all, mut issued, mut no_free) = (Times::default(), Times::default(), Times::default());
    let mut other = 0u64;
    for _ in 0..n {
        let request = Request::post("/v1/codes")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))?;
        let started = Instant::now();
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let answer = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let took = started.elapsed();
        all.push(took);
        match status {
            StatusCode::CREATED => issued.push(took),
            StatusCode::SERVICE_UNAVAILABLE
                if answer.windows(13).any(|w| w == b"no_free_codes") =>
            {
                no_free.push(took)
            }
            _ => other += 1,
        }
    }
    Ok(json!({
        "requests": n,
        "all": all.summary(),
        "issued": issued.summary(),
        "no_free_codes": no_free.summary(),
        "other": other,
    }))
}

/// `n` code allocations as a code request makes them — the store's own
/// `choose_code` over `MAX_CODE_ATTEMPTS` fresh random candidates — each
/// timed alone, after as many untimed ones to warm the page cache (as a
/// serving broker's is). The time is the allocation's only: no commit, no
/// HTTP, no thread hop.
fn allocate(conn: &Connection, hasher: &CodeHasher, n: usize) -> Result<Value> {
    let mut times = Times::default();
    let mut none_free = 0u64;
    for timed in [false, true] {
        for _ in 0..n {
            let candidates = random_codes(MAX_CODE_ATTEMPTS);
            let mut events = Vec::new();
            let started = Instant::now();
            let chosen =
                sqlite::choose_code(conn, hasher, SITE, &candidates, now_ms(), &mut events)?;
            let took = started.elapsed();
            if timed {
                times.push(took);
                none_free += u64::from(chosen.is_none());
            }
        }
    }
    let mut summary = times.summary();
    summary["none_free"] = json!(none_free);
    Ok(summary)
}

async fn code_space(dir: &Path, issues: usize, probes: usize) -> Result<Value> {
    if issues == 0 || probes == 0 {
        return Err("ISSUES and PROBES must be at least 1".into());
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("code-space.sqlite3");
    for stale in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", path.display()));
    }
    // The broker logs each request as it does when serving (stderr).
    telemetry::init();
    let mut site = Site::new(SITE, "Bench", ["http://127.0.0.1"]);
    site.code_lifetime_secs = MAX_CODE_LIFETIME_SECS;
    let state = AppState::open(Config::new([site])?, &path, Arc::new(SystemClock))?;
    let app = app(state);

    // Filling the space is not what is measured, and it goes on this
    // connection of the bench's own, with SQLite's automatic checkpoint.
    let mut conn = sqlite::open_connection(&path)?;
    let hasher = hasher_of(&conn)?;
    // Filling is not what is measured: a big page cache makes it quicker.
    conn.pragma_update(None, "cache_size", -262_144)?;
    // Allocation alone is timed on a connection of its own, set up exactly
    // as the store's are (the 32 MiB page cache included), not on the
    // filling connection with its big cache.
    let alloc_conn = sqlite::open_connection(&path)?;
    let codes = shuffled_codes();
    let space = CODE_SPACE as usize;
    let levels = [
        (0.10, issues),
        (0.50, issues),
        (0.90, issues),
        (0.99, issues),
        (0.9999, probes),
        (1.0, probes),
    ];
    let mut filled = 0;
    let mut fill_secs = 0.0;
    let mut out = Vec::new();
    for (level, n) in levels {
        let target = (level * space as f64).round() as usize;
        let started = Instant::now();
        fill(&mut conn, &hasher, &codes[filled..target])?;
        fill_secs += started.elapsed().as_secs_f64();
        filled = target;
        let live = live_codes(&conn)?;
        let mut figures = issue(&app, n).await?;
        figures["allocation"] = allocate(&alloc_conn, &hasher, n)?;
        figures["occupancy"] = json!(level);
        // Each try clashes with probability `level`, so this share of
        // requests should find no free code within the handler's tries.
        figures["expected_no_free_share"] = json!(level.powi(MAX_CODE_ATTEMPTS as i32));
        figures["live_codes"] = json!(live);
        out.push(figures);
        forget_issued(&conn)?;
    }
    Ok(json!({
        "code_space": CODE_SPACE,
        "max_code_attempts": MAX_CODE_ATTEMPTS,
        "fill_secs": fill_secs,
        "levels": out,
    }))
}
