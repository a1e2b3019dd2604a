//! The embedded store: one SQLite file, no setup.
//!
//! Everything the broker knows is in that file — sessions and their event
//! logs, hashed codes, hashed device tokens, stream tickets and agent API
//! tokens, failed redemptions, and the secret the codes are hashed with — so
//! a broker that is killed and started again on the same file carries on
//! where it stopped (a lock from failed redemptions included). The file is in
//! WAL mode with `synchronous=NORMAL`: a committed change survives the
//! process being killed; only a power cut may lose the last few commits,
//! never corrupt the file.
//!
//! A code is held by the session's row itself (`code_hash`) while the session
//! is pending, and the column is cleared the moment the session leaves
//! `pending` (redemption, cancel, expiry). A unique index on
//! `(site_key, code_hash)` then makes "unique among the site's live codes" a
//! property of the data, not of the code that writes it.
//!
//! Every state change goes through `step`: the lifecycle table decides,
//! an `UPDATE … WHERE id = ? AND state = ?` makes it a compare-and-set, and
//! the session's next event row is written in the same transaction.
//!
//! How it commits: every write runs on one writer thread (`writer.rs`),
//! which commits the writes waiting at that moment in one transaction, each
//! in a savepoint of its own, and answers them only after the `COMMIT`
//! (group commit: a burst pays for one commit, and an answered write is as
//! durable as one committed alone). Reads run on a connection of their
//! own. WAL checkpoints run on a thread of their own (`checkpoint.rs`, [`Checkpointer`]),
//! not inside a request, and the WAL has a bound. A code request's tries
//! (several candidate codes) are one job, one transaction.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_assist_protocol::{
    AgentInfo, EndReason, IdentityKind, SessionState, SessionStatus, Ticket,
};
use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

mod checkpoint;
mod writer;

pub use checkpoint::{CheckpointCounts, Checkpointer, WalLimits};
use writer::Writer;

use super::{
    plan_visitor, AgentRecord, Change, CreateLimited, CreateOutcome, CreateScope, NewAgent,
    NewSession, RedeemAttempt, RedeemStart, RevokeOutcome, Session, SessionEvent, SessionUpdate,
    Store, StoreError, VisitorClaim, VisitorHistory, VisitorRecord,
};
use crate::lifecycle::{self, Event, IllegalTransition};
use crate::limits::{self, Counted, Lock};
use crate::secrets::{self, CodeHasher, Digest32, CODE_SECRET_LEN};

/// The key of the code-hashing secret in the `meta` table.
const CODE_SECRET_KEY: &str = "code_secret";

/// Version 1: sessions and their codes.
const SCHEMA_V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    site_key      TEXT NOT NULL,
    -- HMAC of the code while it is live enough to matter (pending); NULL after.
    code_hash     BLOB,
    -- SHA-256 of the device token.
    token_hash    BLOB NOT NULL,
    state         TEXT NOT NULL,
    end_reason    TEXT,
    visitor_name  TEXT,
    visitor_email TEXT,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- NULLs are distinct in a SQLite unique index, so ended sessions do not clash.
CREATE UNIQUE INDEX sessions_site_code ON sessions (site_key, code_hash);

-- The expiry sweep only looks at pending sessions.
CREATE INDEX sessions_pending_expiry ON sessions (expires_at) WHERE state = 'pending';
";

/// Version 2: the agent's side — who redeemed, the consent deadline, event
/// logs for SSE, stream tickets, agents, failed redemptions.
const SCHEMA_V2: &str = "
ALTER TABLE sessions ADD COLUMN agent_id TEXT;
ALTER TABLE sessions ADD COLUMN agent_name TEXT;
ALTER TABLE sessions ADD COLUMN consent_expires_at INTEGER;

-- The sweep's other half: consent prompts that ran out.
CREATE INDEX sessions_authorizing_expiry ON sessions (consent_expires_at)
    WHERE state = 'authorizing';

-- Each session's statuses, in order; `seq` is the SSE event id.
CREATE TABLE session_events (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
) STRICT, WITHOUT ROWID;

-- SHA-256 of each stream ticket and the one session it reads.
CREATE TABLE stream_tickets (
    ticket_hash BLOB PRIMARY KEY,
    session_id  TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);

-- Agents with a broker-issued API token, kept as its SHA-256 only.
CREATE TABLE agents (
    id         TEXT PRIMARY KEY,
    site       TEXT NOT NULL,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- One row per failed redemption; the limits count them by agent and by site.
CREATE TABLE redeem_failures (
    site     TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    at       INTEGER NOT NULL
) STRICT;
CREATE INDEX redeem_failures_agent ON redeem_failures (site, agent_id, at);
CREATE INDEX redeem_failures_site ON redeem_failures (site, at);
";

/// Version 3: visitors (seeds 002, 003). Each session belongs to one
/// visitor record; the sessions of an older database each get a record of
/// their own (with the session's id as the record's, which cannot clash:
/// both are 128 random bits).
const SCHEMA_V3: &str = "
CREATE TABLE visitors (
    id          TEXT PRIMARY KEY,
    site_key    TEXT NOT NULL,
    -- anonymous | typed | verified
    kind        TEXT NOT NULL,
    -- The widget's anonymous id (anonymous and typed records).
    visitor_id  TEXT,
    -- The site's own user id (verified records).
    user_id     TEXT,
    name        TEXT,
    email       TEXT,
    -- A JSON object of strings, or NULL.
    custom_data TEXT,
    first_seen  INTEGER NOT NULL
) STRICT;
-- NULLs are distinct, so records without one of the ids do not clash.
CREATE UNIQUE INDEX visitors_site_visitor_id ON visitors (site_key, visitor_id);
CREATE UNIQUE INDEX visitors_site_user_id ON visitors (site_key, user_id);

ALTER TABLE sessions ADD COLUMN visitor TEXT;
-- A visitor's tickets, newest first; and the merge's UPDATE.
CREATE INDEX sessions_visitor ON sessions (visitor, created_at);

INSERT INTO visitors (id, site_key, kind, name, email, first_seen)
    SELECT id, site_key,
           CASE WHEN NULLIF(trim(visitor_name), '') IS NULL
                 AND NULLIF(trim(visitor_email), '') IS NULL
                THEN 'anonymous' ELSE 'typed' END,
           NULLIF(trim(visitor_name), ''), NULLIF(trim(visitor_email), ''), created_at
    FROM sessions;
UPDATE sessions SET visitor = id;
";

/// Version 4: fewer B-trees for a code request to write. Sessions and
/// visitors are keyed by their id itself (`WITHOUT ROWID`), instead of a
/// rowid table plus an index on the id; the visitor indexes leave out the
/// records without that id; stream tickets are keyed by their key
/// (`secrets::ticket_key`). A code request now writes eight or nine
/// B-trees where it wrote thirteen, and as ids and ticket keys begin with
/// the time they were made, the new entries of a burst share their pages
/// instead of each dirtying a random one.
///
/// Stream tickets are not carried over: their shape changed (a ticket now
/// starts with its issue time), they last five minutes, and a widget or a
/// console whose ticket is refused asks for a new one.
const SCHEMA_V4: &str = "
CREATE TABLE sessions_v4 (
    id                 TEXT PRIMARY KEY,
    site_key           TEXT NOT NULL,
    code_hash          BLOB,
    token_hash         BLOB NOT NULL,
    state              TEXT NOT NULL,
    end_reason         TEXT,
    visitor_name       TEXT,
    visitor_email      TEXT,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    agent_id           TEXT,
    agent_name         TEXT,
    consent_expires_at INTEGER,
    visitor            TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO sessions_v4 (id, site_key, code_hash, token_hash, state, end_reason, visitor_name,
        visitor_email, created_at, expires_at, agent_id, agent_name, consent_expires_at, visitor)
    SELECT id, site_key, code_hash, token_hash, state, end_reason, visitor_name,
        visitor_email, created_at, expires_at, agent_id, agent_name, consent_expires_at, visitor
    FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v4 RENAME TO sessions;
CREATE UNIQUE INDEX sessions_site_code ON sessions (site_key, code_hash)
    WHERE code_hash IS NOT NULL;
CREATE INDEX sessions_pending_expiry ON sessions (expires_at) WHERE state = 'pending';
CREATE INDEX sessions_authorizing_expiry ON sessions (consent_expires_at)
    WHERE state = 'authorizing';
CREATE INDEX sessions_visitor ON sessions (visitor, created_at);

CREATE TABLE visitors_v4 (
    id          TEXT PRIMARY KEY,
    site_key    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    visitor_id  TEXT,
    user_id     TEXT,
    name        TEXT,
    email       TEXT,
    custom_data TEXT,
    first_seen  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO visitors_v4 SELECT id, site_key, kind, visitor_id, user_id, name, email,
        custom_data, first_seen
    FROM visitors;
DROP TABLE visitors;
ALTER TABLE visitors_v4 RENAME TO visitors;
CREATE UNIQUE INDEX visitors_site_visitor_id ON visitors (site_key, visitor_id)
    WHERE visitor_id IS NOT NULL;
CREATE UNIQUE INDEX visitors_site_user_id ON visitors (site_key, user_id)
    WHERE user_id IS NOT NULL;

DROP TABLE stream_tickets;
-- Each stream ticket's key (its issue time, then its SHA-256) and the one
-- session it reads.
CREATE TABLE stream_tickets (
    ticket_key BLOB PRIMARY KEY,
    session_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);
";

/// Version 5: the creation limits count each session's network address,
/// kept as 16 bytes of its keyed hash (never the address itself).
const SCHEMA_V5: &str = "
ALTER TABLE sessions ADD COLUMN address_key BLOB;
CREATE INDEX sessions_address ON sessions (address_key, created_at)
    WHERE address_key IS NOT NULL;
";

/// Each schema version's migration from the one before; the database's
/// `PRAGMA user_version` says how many have been applied.
const MIGRATIONS: [&str; 5] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5];

const SESSION_COLUMNS: &str = "id, site_key, state, end_reason, token_hash, visitor_name, \
     visitor_email, created_at, expires_at, agent_id, agent_name, consent_expires_at, visitor";

const VISITOR_COLUMNS: &str =
    "id, site_key, kind, visitor_id, user_id, name, email, custom_data, first_seen";

/// The SQLite backend of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

// The fields drop in this order: the writer first (it finishes the writes
// already queued and closes its connection), then the checkpoint thread.
struct Inner {
    // Every write goes to the writer thread, which commits the writes that
    // are waiting together (see `writer`).
    writer: Writer,
    checkpointer: Checkpointer,
    // Reads go to a connection of their own, behind a std (not tokio)
    // mutex used only inside `spawn_blocking`: rusqlite calls block the
    // thread, so they must not run on the async workers, and the lock is
    // never held across an `.await`. In WAL mode they never wait for the
    // writer, and a read started after a write was answered sees it.
    reader: Mutex<Connection>,
    hasher: CodeHasher,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// Opens a connection to the database at `path` set up the way every
/// connection of the store is: WAL mode, `synchronous=NORMAL`, a busy
/// timeout and a statement cache. Public so that the bench measures the raw
/// insert rate with exactly these settings.
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(backend)?;
    // Temporary files in memory. The one that matters is the savepoints'
    // journal: a batch of group-committed writes (`writer.rs`) gives each
    // write a savepoint, and past 64 KiB SQLite spilled that journal to a
    // file on disk, which took a quarter of the writer's time under load.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(backend)?;
    // 32 MiB of page cache (SQLite's default is 2 MiB): the code index of a
    // few hundred thousand sessions stays in memory, so checking a
    // candidate code does not read from the file. Only pages in use take
    // memory.
    conn.pragma_update(None, "cache_size", -32_768)
        .map_err(backend)?;
    // The CLI (`agents add`) may write while a broker serves the same
    // file, and an operator's tool may hold a lock for a moment: wait
    // for them rather than fail a request.
    conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner stability guarantee: a prepared statement keeps its
    // plan whatever is bound to it. Without it, this build of SQLite (with
    // STAT4) compiled some cached statements again on every run because a
    // bound value might have changed the plan — a fifth of a code request's
    // time on the writer, for plans that never change here (no ANALYZE).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    Ok(conn)
}

/// A connection to `path` for writing, set up and checkpointed as the
/// store's writer is (see [`Checkpointer`]): the bench's raw insert loop
/// uses it, so the raw rate pays for checkpoints exactly as the store does.
pub fn open_writer(
    path: &Path,
    limits: WalLimits,
) -> Result<(Connection, Checkpointer), StoreError> {
    let mut conn = open_connection(path)?;
    let checkpointer = Checkpointer::start(&mut conn, open_connection(path)?, limits)?;
    Ok((conn, checkpointer))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. On first use this
    /// creates the schema and the code-hashing secret; an older schema is
    /// brought up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, WalLimits::default())
    }

    /// As [`SqliteStore::open`], checkpointing the WAL at `limits`.
    pub fn open_with(path: impl AsRef<Path>, limits: WalLimits) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let (mut conn, checkpointer) = open_writer(path, limits)?;
        migrate(&mut conn)?;
        let secret = load_or_create_secret(&mut conn)?;
        let reader = open_connection(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Writer::start(conn, CodeHasher::new(&secret))?,
                checkpointer,
                reader: Mutex::new(reader),
                hasher: CodeHasher::new(&secret),
            }),
        })
    }

    /// How many WAL checkpoints have run so far, and where.
    pub fn checkpoints(&self) -> CheckpointCounts {
        self.inner.checkpointer.counts()
    }

    /// Runs `f` on the read connection, on the blocking thread pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves it poisoned, but not the
            // data: an open rusqlite transaction rolls back when dropped, so
            // the connection is consistent and can go on being used.
            let mut conn = inner.reader.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn, &inner.hasher)
        })
        .await
        .map_err(backend)?
    }

    /// Runs `f` on the writer thread, inside a transaction that may hold
    /// other callers' writes too; answers once that transaction is
    /// committed. `f` returning an error undoes its own writes only.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(f).await
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(version)
        .ok()
        .filter(|v| *v <= known)
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "the database has schema version {version}; this broker knows only up to \
                 {known} (was it written by a newer broker?)"
            ))
        })?;
    if applied == known {
        return Ok(());
    }
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration).map_err(backend)?;
    }
    tx.pragma_update(None, "user_version", known as i64)
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

/// The secret codes are hashed with: read from `meta`, or drawn and stored on
/// first start. Losing it would make every live code unfindable, which is why
/// it lives in the same file as the hashes.
fn load_or_create_secret(conn: &mut Connection) -> Result<[u8; CODE_SECRET_LEN], StoreError> {
    // `INSERT OR IGNORE` then `SELECT`: if two processes ever raced here, both
    // would end up with the one secret that won.
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
        params![CODE_SECRET_KEY, secrets::new_code_secret()],
    )
    .map_err(backend)?;
    let secret: Vec<u8> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [CODE_SECRET_KEY],
            |row| row.get(0),
        )
        .map_err(backend)?;
    secret
        .try_into()
        .map_err(|_| StoreError::Corrupt("meta.code_secret is not 32 bytes".into()))
}

fn ms_to_sql(ms: u64) -> i64 {
    // Milliseconds since 1970 fit in an i64 for the next 292 million years.
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A column that holds something this code never writes.
fn bad_column(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

/// Reads a millisecond time from column `idx`.
fn ms_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| bad_column(idx, format!("negative time {v}")))
}

fn opt_ms_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => ms_column(row, idx).map(Some),
    }
}

fn read_session(row: &Row<'_>) -> rusqlite::Result<Session> {
    let state: String = row.get(2)?;
    let state =
        SessionState::from_name(&state).ok_or_else(|| bad_column(2, format!("state {state:?}")))?;
    let end_reason = match row.get::<_, Option<String>>(3)? {
        None => None,
        Some(r) => Some(
            EndReason::from_name(&r).ok_or_else(|| bad_column(3, format!("end_reason {r:?}")))?,
        ),
    };
    let agent = match (
        row.get::<_, Option<String>>(9)?,
        row.get::<_, Option<String>>(10)?,
    ) {
        (Some(id), Some(name)) => Some(AgentInfo { id, name }),
        _ => None,
    };
    Ok(Session {
        id: row.get(0)?,
        site_key: row.get(1)?,
        state,
        end_reason,
        token_hash: row.get(4)?,
        visitor_name: row.get(5)?,
        visitor_email: row.get(6)?,
        created_at: ms_column(row, 7)?,
        expires_at: ms_column(row, 8)?,
        agent,
        consent_expires_at: opt_ms_column(row, 11)?,
        visitor: row.get(12)?,
    })
}

fn kind_to_sql(kind: IdentityKind) -> &'static str {
    match kind {
        IdentityKind::Anonymous => "anonymous",
        IdentityKind::Typed => "typed",
        IdentityKind::Verified => "verified",
    }
}

fn kind_from_sql(s: &str) -> Option<IdentityKind> {
    Some(match s {
        "anonymous" => IdentityKind::Anonymous,
        "typed" => IdentityKind::Typed,
        "verified" => IdentityKind::Verified,
        _ => return None,
    })
}

/// `custom_data` as stored: `NULL` for none.
fn custom_to_sql(custom: &BTreeMap<String, String>) -> Result<Option<String>, StoreError> {
    if custom.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(custom).map(Some).map_err(backend)
}

fn read_visitor(row: &Row<'_>) -> rusqlite::Result<VisitorRecord> {
    let kind: String = row.get(2)?;
    let kind = kind_from_sql(&kind).ok_or_else(|| bad_column(2, format!("kind {kind:?}")))?;
    let custom_data = match row.get::<_, Option<String>>(7)? {
        None => BTreeMap::new(),
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| bad_column(7, format!("custom_data: {e}")))?
        }
    };
    Ok(VisitorRecord {
        id: row.get(0)?,
        site_key: row.get(1)?,
        kind,
        visitor_id: row.get(3)?,
        user_id: row.get(4)?,
        name: row.get(5)?,
        email: row.get(6)?,
        custom_data,
        first_seen: ms_column(row, 8)?,
    })
}

/// The visitor record of `site_key` whose `column` (`visitor_id` or
/// `user_id`) is `value`.
fn find_visitor(
    conn: &Connection,
    site_key: &str,
    column: &'static str,
    value: &str,
) -> Result<Option<VisitorRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {VISITOR_COLUMNS} FROM visitors WHERE site_key = ?1 AND {column} = ?2"
    ))
    .and_then(|mut st| st.query_row([site_key, value], read_visitor).optional())
    .map_err(backend)
}

fn insert_visitor(conn: &Connection, v: &VisitorRecord) -> Result<(), StoreError> {
    let custom = custom_to_sql(&v.custom_data)?;
    conn.prepare_cached(&format!(
        "INSERT INTO visitors ({VISITOR_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
    ))
    .and_then(|mut st| {
        st.execute(params![
            v.id,
            v.site_key,
            kind_to_sql(v.kind),
            v.visitor_id,
            v.user_id,
            v.name,
            v.email,
            custom,
            ms_to_sql(v.first_seen),
        ])
    })
    .map_err(backend)?;
    Ok(())
}

/// Writes back the fields of `v` that can change (kind, name, email,
/// custom data, first contact).
fn update_visitor(conn: &Connection, v: &VisitorRecord) -> Result<(), StoreError> {
    let custom = custom_to_sql(&v.custom_data)?;
    conn.prepare_cached(
        "UPDATE visitors SET kind = ?2, name = ?3, email = ?4, custom_data = ?5, first_seen = ?6 \
         WHERE id = ?1",
    )
    .and_then(|mut st| {
        st.execute(params![
            v.id,
            kind_to_sql(v.kind),
            v.name,
            v.email,
            custom,
            ms_to_sql(v.first_seen),
        ])
    })
    .map_err(backend)?;
    Ok(())
}

/// Finds or makes the visitor record a new session of `site_key` belongs
/// to, merging as [`Store::create_session`] says; returns the record's id
/// and how many sessions were merged into it. Runs inside the caller's
/// transaction, which is what makes the merge atomic: two requests merging
/// the same anonymous visitor are serialised, and the second finds the
/// anonymous record gone.
/// The 16 bytes the creation limits count an address by: a keyed hash, so
/// the database holds no address in clear.
fn address_key(hasher: &CodeHasher, site_key: &str, address: &str) -> [u8; 16] {
    let digest = hasher.hash(site_key, &format!("address:{address}"));
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// The first creation limit `new` is over, if any. The visitor is the
/// record the request would join (an unknown visitor has no codes yet).
fn creation_limited(
    conn: &Connection,
    new: &NewSession,
    address_key: Option<&[u8; 16]>,
) -> Result<Option<CreateLimited>, StoreError> {
    let l = &new.limits;
    let now = new.created_at;
    let lifetime = new.expires_at.saturating_sub(new.created_at);
    if l.visitor_live > 0 || l.visitor_per_minute > 0 {
        if let Some(visitor) = existing_visitor(conn, &new.site_key, &new.visitor)? {
            let counts = CountBy {
                column: "visitor",
                value: &visitor,
            };
            if let Some(until) =
                counts.over(conn, l.visitor_live, l.visitor_per_minute, now, lifetime)?
            {
                return Ok(Some(
                    until.scoped(CreateScope::VisitorLive, CreateScope::VisitorRate),
                ));
            }
        }
    }
    if let Some(key) = address_key.filter(|_| l.address_live > 0 || l.address_per_minute > 0) {
        let counts = CountBy {
            column: "address_key",
            value: key.as_slice(),
        };
        if let Some(until) =
            counts.over(conn, l.address_live, l.address_per_minute, now, lifetime)?
        {
            return Ok(Some(
                until.scoped(CreateScope::AddressLive, CreateScope::AddressRate),
            ));
        }
    }
    if l.site_live > 0 && live_codes(conn, &new.site_key, now)? >= u64::from(l.site_live) {
        return Ok(Some(CreateLimited {
            scope: CreateScope::SiteLive,
            until_ms: now + MINUTE_MS,
        }));
    }
    Ok(None)
}

/// How many live codes `site_key` has at `now_ms`.
fn live_codes(conn: &Connection, site_key: &str, now_ms: u64) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM sessions WHERE site_key = ?1 AND code_hash IS NOT NULL \
             AND state = 'pending' AND expires_at > ?2",
        )
        .and_then(|mut st| st.query_row(params![site_key, ms_to_sql(now_ms)], |r| r.get(0)))
        .map_err(backend)?;
    Ok(n.unsigned_abs())
}

/// The id of the visitor record a code request would join, if it exists.
fn existing_visitor(
    conn: &Connection,
    site_key: &str,
    claim: &VisitorClaim,
) -> Result<Option<String>, StoreError> {
    let found = match (&claim.verified, &claim.visitor_id) {
        (Some(user), _) => find_visitor(conn, site_key, "user_id", &user.user_id)?,
        (None, Some(visitor_id)) => find_visitor(conn, site_key, "visitor_id", visitor_id)?,
        (None, None) => None,
    };
    Ok(found.map(|record| record.id))
}

/// Sessions counted by one column's value (a visitor record, an address).
struct CountBy<'a, V: rusqlite::ToSql + ?Sized> {
    column: &'static str,
    value: &'a V,
}

/// Which of the two limits was hit, and until when.
enum Over {
    Live(u64),
    Rate(u64),
}

impl Over {
    fn scoped(self, live: CreateScope, rate: CreateScope) -> CreateLimited {
        match self {
            Over::Live(until_ms) => CreateLimited {
                scope: live,
                until_ms,
            },
            Over::Rate(until_ms) => CreateLimited {
                scope: rate,
                until_ms,
            },
        }
    }
}

impl<V: rusqlite::ToSql + ?Sized> CountBy<'_, V> {
    /// Whether the sessions with this value hold `live_max` live codes or
    /// more, or were `per_minute_max` or more created within the last
    /// minute (0 = no limit). Only sessions younger than a code's lifetime
    /// can still hold a live code, so both counts read a short range of
    /// the `(column, created_at)` index.
    fn over(
        &self,
        conn: &Connection,
        live_max: u32,
        per_minute_max: u32,
        now: u64,
        lifetime: u64,
    ) -> Result<Option<Over>, StoreError> {
        let since = now.saturating_sub(lifetime.max(MINUTE_MS));
        let (live, first_expiry, recent, first_recent): (i64, Option<i64>, i64, Option<i64>) = conn
            .prepare_cached(&format!(
                "SELECT \
                   count(*) FILTER (WHERE state = 'pending' AND expires_at > ?3), \
                   min(expires_at) FILTER (WHERE state = 'pending' AND expires_at > ?3), \
                   count(*) FILTER (WHERE created_at > ?4), \
                   min(created_at) FILTER (WHERE created_at > ?4) \
                 FROM sessions WHERE {column} = ?1 AND created_at > ?2",
                column = self.column
            ))
            .and_then(|mut st| {
                st.query_row(
                    params![
                        self.value,
                        ms_to_sql(since),
                        ms_to_sql(now),
                        ms_to_sql(now.saturating_sub(MINUTE_MS))
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
            })
            .map_err(backend)?;
        if live_max > 0 && live >= i64::from(live_max) {
            let until = first_expiry.map_or(now, i64::unsigned_abs);
            return Ok(Some(Over::Live(until)));
        }
        if per_minute_max > 0 && recent >= i64::from(per_minute_max) {
            let until = first_recent.map_or(now, |t| t.unsigned_abs() + MINUTE_MS);
            return Ok(Some(Over::Rate(until)));
        }
        Ok(None)
    }
}

const MINUTE_MS: u64 = 60_000;

fn resolve_visitor(
    conn: &Connection,
    site_key: &str,
    claim: &VisitorClaim,
    now_ms: u64,
) -> Result<(String, u64), StoreError> {
    let by_user = match &claim.verified {
        Some(user) => find_visitor(conn, site_key, "user_id", &user.user_id)?,
        None => None,
    };
    let by_visitor = match &claim.visitor_id {
        Some(visitor_id) => find_visitor(conn, site_key, "visitor_id", visitor_id)?,
        None => None,
    };
    let plan = plan_visitor(
        site_key,
        claim,
        by_user,
        by_visitor,
        now_ms,
        secrets::new_session_id,
    );
    // A record found and left as it was (an anonymous visitor coming back)
    // is not written again.
    if !plan.existed {
        insert_visitor(conn, &plan.record)?;
    } else if claim.verified.is_some() || claim.typed.is_some() {
        update_visitor(conn, &plan.record)?;
    }
    let mut merged = 0;
    if let Some(anonymous) = &plan.merge {
        merged = conn
            .prepare_cached("UPDATE sessions SET visitor = ?2 WHERE visitor = ?1")
            .and_then(|mut st| st.execute(params![anonymous.id, plan.record.id]))
            .map_err(backend)? as u64;
        conn.prepare_cached("DELETE FROM visitors WHERE id = ?1")
            .and_then(|mut st| st.execute([&anonymous.id]))
            .map_err(backend)?;
    }
    Ok((plan.record.id, merged))
}

/// How a ticket reads at `now_ms`: a timeout that is due but not yet
/// applied is shown as applied, as every other reader would see it.
fn read_ticket(row: &Row<'_>, now_ms: u64) -> rusqlite::Result<Ticket> {
    let state: String = row.get(2)?;
    let state =
        SessionState::from_name(&state).ok_or_else(|| bad_column(2, format!("state {state:?}")))?;
    let end_reason = match row.get::<_, Option<String>>(3)? {
        None => None,
        Some(r) => Some(
            EndReason::from_name(&r).ok_or_else(|| bad_column(3, format!("end_reason {r:?}")))?,
        ),
    };
    let expires_at = ms_column(row, 5)?;
    let consent_expires_at = opt_ms_column(row, 6)?;
    let (state, end_reason) =
        lifecycle::as_of(state, end_reason, expires_at, consent_expires_at, now_ms);
    Ok(Ticket {
        session_id: row.get(0)?,
        created_at: ms_column(row, 1)?,
        state,
        end_reason,
        agent_name: row.get(4)?,
    })
}

fn select_session(conn: &Connection, id: &str) -> Result<Option<Session>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
    ))
    .and_then(|mut st| st.query_row([id], read_session).optional())
    .map_err(backend)
}

/// Appends `session`'s current status to its event log as the next `seq`.
fn append_event(conn: &Connection, session: &Session, at: u64) -> Result<SessionEvent, StoreError> {
    let status = session.status();
    let json = serde_json::to_string(&status).map_err(backend)?;
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO session_events (session_id, seq, status, at) VALUES (?1, \
             COALESCE((SELECT MAX(seq) FROM session_events WHERE session_id = ?1), 0) + 1, \
             ?2, ?3) RETURNING seq",
        )
        .and_then(|mut st| st.query_row(params![session.id, json, ms_to_sql(at)], |r| r.get(0)))
        .map_err(backend)?;
    Ok(SessionEvent {
        session_id: session.id.clone(),
        seq: seq.unsigned_abs(),
        status,
        at,
    })
}

/// Moves `session` (as read in the current transaction) by `event`, if the
/// lifecycle allows it: a compare-and-set on the state it was read in, plus
/// the event row. On success `session` is the new state; when the table
/// refuses, or the state was changed by someone else since it was read,
/// nothing is written and `session` is what the database holds.
fn step(
    conn: &Connection,
    session: &mut Session,
    event: Event,
    redeem: Option<(&AgentInfo, u64)>,
    now_ms: u64,
) -> Result<Result<SessionEvent, IllegalTransition>, StoreError> {
    let (to, reason) = match lifecycle::next(session.state, event) {
        Ok(next) => next,
        Err(illegal) => return Ok(Err(illegal)),
    };
    let mut after = session.clone();
    after.state = to;
    after.end_reason = reason;
    if let Some((agent, consent_expires_at)) = redeem {
        after.agent = Some(agent.clone());
        after.consent_expires_at = Some(consent_expires_at);
    }
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET state = ?2, end_reason = ?3, \
             code_hash = CASE WHEN ?2 = 'pending' THEN code_hash ELSE NULL END, \
             agent_id = ?4, agent_name = ?5, consent_expires_at = ?6 \
             WHERE id = ?1 AND state = ?7",
        )
        .and_then(|mut st| {
            st.execute(params![
                after.id,
                after.state.as_str(),
                after.end_reason.map(EndReason::as_str),
                after.agent.as_ref().map(|a| a.id.as_str()),
                after.agent.as_ref().map(|a| a.name.as_str()),
                after.consent_expires_at.map(ms_to_sql),
                session.state.as_str(),
            ])
        })
        .map_err(backend)?;
    if changed != 1 {
        // Lost the compare-and-set: report the state that won.
        *session = select_session(conn, &session.id)?
            .ok_or_else(|| StoreError::Corrupt(format!("session {} vanished", session.id)))?;
        return Ok(Err(IllegalTransition {
            from: session.state,
            event,
        }));
    }
    *session = after;
    append_event(conn, session, now_ms).map(Ok)
}

/// Applies the timeout due for `session` at `now_ms`, if any, adding its
/// event to `events`.
fn catch_up(
    conn: &Connection,
    session: &mut Session,
    now_ms: u64,
    events: &mut Vec<SessionEvent>,
) -> Result<(), StoreError> {
    let due = lifecycle::due_timeout(
        session.state,
        session.expires_at,
        session.consent_expires_at,
        now_ms,
    );
    if let Some(event) = due {
        if let Ok(e) = step(conn, session, event, None, now_ms)? {
            match event {
                Event::CodeExpired => {
                    tracing::info!(session_id = %session.id, site = %session.site_key, "code expired");
                }
                _ => {
                    tracing::info!(session_id = %session.id, site = %session.site_key, "consent prompt timed out");
                }
            }
            events.push(e);
        }
    }
    Ok(())
}

/// The time of the `n`-th newest failure after `since_ms`, for the limits.
fn nth_newest_failure(
    conn: &Connection,
    counted: Counted,
    site_key: &str,
    agent_id: &str,
    n: u32,
    since_ms: u64,
) -> Result<Option<u64>, StoreError> {
    let offset = i64::from(n.max(1) - 1);
    let at: Option<i64> = match counted {
        Counted::Agent => conn
            .prepare_cached(
                "SELECT at FROM redeem_failures WHERE site = ?1 AND agent_id = ?2 AND at > ?3 \
                 ORDER BY at DESC LIMIT 1 OFFSET ?4",
            )
            .and_then(|mut st| {
                st.query_row(
                    params![site_key, agent_id, ms_to_sql(since_ms), offset],
                    |r| r.get(0),
                )
                .optional()
            }),
        Counted::Site => conn
            .prepare_cached(
                "SELECT at FROM redeem_failures WHERE site = ?1 AND at > ?2 \
                 ORDER BY at DESC LIMIT 1 OFFSET ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![site_key, ms_to_sql(since_ms), offset], |r| r.get(0))
                    .optional()
            }),
    }
    .map_err(backend)?;
    Ok(at.map(i64::unsigned_abs))
}

fn lock_for(conn: &Connection, attempt: &RedeemAttempt) -> Result<Option<Lock>, StoreError> {
    limits::current_lock(&attempt.limits, attempt.now_ms, |counted, n, since| {
        nth_newest_failure(
            conn,
            counted,
            &attempt.site_key,
            &attempt.agent_id,
            n,
            since,
        )
    })
}

fn live_code_session(
    conn: &Connection,
    site_key: &str,
    code_hash: &Digest32,
    now_ms: u64,
) -> Result<Option<String>, StoreError> {
    conn.prepare_cached(
        "SELECT id FROM sessions WHERE site_key = ?1 AND code_hash = ?2 \
         AND state = 'pending' AND expires_at > ?3",
    )
    .and_then(|mut st| {
        st.query_row(params![site_key, code_hash, ms_to_sql(now_ms)], |r| {
            r.get(0)
        })
        .optional()
    })
    .map_err(backend)
}

/// Whether the code hashed `code_hash` is free for a new session of
/// `site_key` at `now_ms`: no session holds it, or its holder has expired
/// unnoticed, which ends the holder now (its event is added to `events`).
fn code_is_free(
    conn: &Connection,
    site_key: &str,
    code_hash: &Digest32,
    now_ms: u64,
    events: &mut Vec<SessionEvent>,
) -> Result<bool, StoreError> {
    let holder: Option<(String, String, i64)> = conn
        .prepare_cached(
            "SELECT id, state, expires_at FROM sessions WHERE site_key = ?1 AND code_hash = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![site_key, code_hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(backend)?;
    let Some((holder_id, state, expires_at)) = holder else {
        return Ok(true);
    };
    // The usual clash, in a crowded code space: a live code. Told from the
    // index's row alone, without reading the whole session.
    if state == SessionState::Pending.as_str() && expires_at > ms_to_sql(now_ms) {
        return Ok(false);
    }
    let mut holder = select_session(conn, &holder_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("session {holder_id} vanished")))?;
    catch_up(conn, &mut holder, now_ms, events)?;
    Ok(holder.state != SessionState::Pending)
}

/// Code allocation: the first of `codes` that is free for a new session of
/// `site_key` at `now_ms` (its index, and its hash), or `None` when every
/// one is held. A holder found expired is ended on the way (its event goes
/// to `events`). Public so that the bench times the allocation on its own,
/// on a connection set up as the store's ([`open_connection`]).
pub fn choose_code(
    conn: &Connection,
    hasher: &CodeHasher,
    site_key: &str,
    codes: &[String],
    now_ms: u64,
    events: &mut Vec<SessionEvent>,
) -> Result<Option<(usize, Digest32)>, StoreError> {
    // First, from the code index alone (the session's row is not read): a
    // code no session holds. In a crowded space most candidates are held,
    // and this is one B-tree lookup each instead of two.
    let mut held = conn
        .prepare_cached("SELECT 1 FROM sessions WHERE site_key = ?1 AND code_hash = ?2")
        .map_err(backend)?;
    let mut hashes = Vec::with_capacity(codes.len());
    for (i, code) in codes.iter().enumerate() {
        let hash = hasher.hash(site_key, code);
        if !held.exists(params![site_key, hash]).map_err(backend)? {
            return Ok(Some((i, hash)));
        }
        hashes.push(hash);
    }
    // Then a code whose holder has expired unnoticed (the sweep had not
    // come yet), which ends the holder.
    for (i, hash) in hashes.iter().enumerate() {
        if code_is_free(conn, site_key, hash, now_ms, events)? {
            return Ok(Some((i, *hash)));
        }
    }
    Ok(None)
}

fn read_agent(row: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        id: row.get(0)?,
        site_key: row.get(1)?,
        name: row.get(2)?,
        created_at: ms_column(row, 3)?,
        revoked_at: opt_ms_column(row, 4)?,
    })
}

fn read_event(row: &Row<'_>) -> rusqlite::Result<SessionEvent> {
    let json: String = row.get(2)?;
    let status: SessionStatus =
        serde_json::from_str(&json).map_err(|e| bad_column(2, format!("event status: {e}")))?;
    let seq: i64 = row.get(1)?;
    Ok(SessionEvent {
        session_id: row.get(0)?,
        seq: seq.unsigned_abs(),
        status,
        at: ms_column(row, 3)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_session(&self, new: NewSession) -> Result<CreateOutcome, StoreError> {
        self.write(move |tx, hasher| {
            let address_key = new
                .address
                .as_deref()
                .map(|a| address_key(hasher, &new.site_key, a));
            if let Some(limited) = creation_limited(tx, &new, address_key.as_ref())? {
                return Ok(CreateOutcome::Limited(limited));
            }
            let mut events = Vec::new();
            let chosen = choose_code(
                tx,
                hasher,
                &new.site_key,
                &new.codes,
                new.created_at,
                &mut events,
            )?;
            let Some((code, code_hash)) = chosen.map(|(i, hash)| (&new.codes[i], hash)) else {
                // Nothing was written: a holder that had expired would have
                // been ended, and its code chosen.
                return Ok(CreateOutcome::CodeTaken);
            };
            let (visitor, merged) =
                resolve_visitor(tx, &new.site_key, &new.visitor, new.created_at)?;
            let typed = new.visitor.typed.as_ref();
            let visitor_name = typed.and_then(|t| t.name.clone());
            let visitor_email = typed.and_then(|t| t.email.clone());
            tx.prepare_cached(
                "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, end_reason, \
                 visitor_name, visitor_email, created_at, expires_at, visitor, address_key) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', NULL, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    new.id,
                    new.site_key,
                    code_hash,
                    new.token_hash,
                    visitor_name,
                    visitor_email,
                    ms_to_sql(new.created_at),
                    ms_to_sql(new.expires_at),
                    visitor,
                    address_key,
                ])
            })
            .map_err(backend)?;
            let session = Session {
                id: new.id.clone(),
                site_key: new.site_key.clone(),
                state: SessionState::Pending,
                end_reason: None,
                token_hash: new.token_hash,
                visitor_name,
                visitor_email,
                visitor: Some(visitor.clone()),
                created_at: new.created_at,
                expires_at: new.expires_at,
                agent: None,
                consent_expires_at: None,
            };
            events.push(append_event(tx, &session, new.created_at)?);
            tx.prepare_cached(
                "INSERT INTO stream_tickets (ticket_key, session_id, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    new.ticket_key,
                    new.id,
                    ms_to_sql(new.ticket_expires_at)
                ])
            })
            .map_err(backend)?;
            Ok(CreateOutcome::Created {
                code: code.clone(),
                events,
                visitor,
                merged,
            })
        })
        .await
    }

    async fn visitor(
        &self,
        session_id: &str,
        max_tickets: usize,
        now_ms: u64,
    ) -> Result<Option<VisitorHistory>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |conn, _| {
            // One read transaction, so the record and its tickets are of the
            // same moment even if a merge commits in between.
            let tx = conn.transaction().map_err(backend)?;
            let visitor: Option<Option<String>> = tx
                .prepare_cached("SELECT visitor FROM sessions WHERE id = ?1")
                .and_then(|mut st| st.query_row([&session_id], |r| r.get(0)).optional())
                .map_err(backend)?;
            let Some(visitor) = visitor else {
                return Ok(None);
            };
            let visitor = visitor.ok_or_else(|| {
                StoreError::Corrupt(format!("session {session_id} has no visitor record"))
            })?;
            let record = tx
                .prepare_cached(&format!(
                    "SELECT {VISITOR_COLUMNS} FROM visitors WHERE id = ?1"
                ))
                .and_then(|mut st| st.query_row([&visitor], read_visitor).optional())
                .map_err(backend)?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("session {session_id}'s visitor record is gone"))
                })?;
            let limit = i64::try_from(max_tickets).unwrap_or(i64::MAX);
            let tickets = tx
                .prepare_cached(
                    "SELECT id, created_at, state, end_reason, agent_name, expires_at, \
                     consent_expires_at FROM sessions WHERE visitor = ?1 \
                     ORDER BY created_at DESC, id DESC LIMIT ?2",
                )
                .and_then(|mut st| {
                    st.query_map(params![visitor, limit], |row| read_ticket(row, now_ms))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Some(VisitorHistory { record, tickets }))
        })
        .await
    }

    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<SessionUpdate>, StoreError> {
        let id = id.to_owned();
        let read_id = id.clone();
        let read = self
            .read(move |conn, _| {
                let Some(session) = select_session(conn, &read_id)? else {
                    return Ok(None);
                };
                let due = lifecycle::due_timeout(
                    session.state,
                    session.expires_at,
                    session.consent_expires_at,
                    now_ms,
                );
                Ok(Some((session, due.is_some())))
            })
            .await?;
        match read {
            None => return Ok(None),
            // The common case: a plain read, no write.
            Some((session, false)) => {
                return Ok(Some(SessionUpdate {
                    session,
                    events: Vec::new(),
                    refused: None,
                }))
            }
            Some((_, true)) => {}
        }
        // A timeout is due: read again on the writer, where nothing can
        // change the session between the read and the write.
        self.write(move |tx, _| {
            let Some(mut session) = select_session(tx, &id)? else {
                return Ok(None);
            };
            let mut events = Vec::new();
            catch_up(tx, &mut session, now_ms, &mut events)?;
            Ok(Some(SessionUpdate {
                session,
                events,
                refused: None,
            }))
        })
        .await
    }

    async fn apply(
        &self,
        id: &str,
        change: Change,
        now_ms: u64,
    ) -> Result<Option<SessionUpdate>, StoreError> {
        let id = id.to_owned();
        self.write(move |tx, _| {
            let Some(mut session) = select_session(tx, &id)? else {
                return Ok(None);
            };
            let mut events = Vec::new();
            catch_up(tx, &mut session, now_ms, &mut events)?;
            let redeem = match &change {
                Change::Redeem {
                    agent,
                    consent_expires_at,
                } => Some((agent, *consent_expires_at)),
                _ => None,
            };
            let refused = match step(tx, &mut session, change.event(), redeem, now_ms)? {
                Ok(event) => {
                    events.push(event);
                    None
                }
                Err(illegal) => Some(illegal),
            };
            Ok(Some(SessionUpdate {
                session,
                events,
                refused,
            }))
        })
        .await
    }

    async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let (site_key, code) = (site_key.to_owned(), code.to_owned());
        self.read(move |conn, hasher| {
            live_code_session(conn, &site_key, &hasher.hash(&site_key, &code), now_ms)
        })
        .await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<Vec<SessionEvent>, StoreError> {
        self.write(move |tx, _| {
            let now = ms_to_sql(now_ms);
            let due: Vec<String> = tx
                .prepare_cached(
                    "SELECT id FROM sessions WHERE state = 'pending' AND expires_at <= ?1 \
                     UNION ALL \
                     SELECT id FROM sessions WHERE state = 'authorizing' \
                     AND consent_expires_at <= ?1",
                )
                .and_then(|mut st| {
                    st.query_map([now], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(backend)?;
            let mut events = Vec::new();
            for id in due {
                if let Some(mut session) = select_session(tx, &id)? {
                    catch_up(tx, &mut session, now_ms, &mut events)?;
                }
            }
            tx.prepare_cached("DELETE FROM stream_tickets WHERE expires_at <= ?1")
                .and_then(|mut st| st.execute([now]))
                .map_err(backend)?;
            tx.prepare_cached("DELETE FROM redeem_failures WHERE at <= ?1")
                .and_then(|mut st| {
                    st.execute([ms_to_sql(now_ms.saturating_sub(limits::KEEP_FAILURES_MS))])
                })
                .map_err(backend)?;
            Ok(events)
        })
        .await
    }

    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<SessionEvent>, StoreError> {
        let id = id.to_owned();
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT session_id, seq, status, at FROM session_events \
                 WHERE session_id = ?1 AND seq > ?2 ORDER BY seq",
            )
            .and_then(|mut st| {
                st.query_map(params![id, ms_to_sql(after)], read_event)?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(backend)
        })
        .await
    }

    async fn create_ticket(
        &self,
        session_id: &str,
        ticket_key: Digest32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let session_id = session_id.to_owned();
        self.write(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO stream_tickets (ticket_key, session_id, expires_at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| st.execute(params![ticket_key, session_id, ms_to_sql(expires_at)]))
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn ticket_session(
        &self,
        ticket_key: Digest32,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT session_id FROM stream_tickets WHERE ticket_key = ?1 AND expires_at > ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![ticket_key, ms_to_sql(now_ms)], |r| r.get(0))
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn add_agent(&self, agent: NewAgent) -> Result<(), StoreError> {
        self.write(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO agents (id, site, name, token_hash, created_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    agent.id,
                    agent.site_key,
                    agent.name,
                    agent.token_hash,
                    ms_to_sql(agent.created_at)
                ])
            })
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn agents(&self, site_key: Option<&str>) -> Result<Vec<AgentRecord>, StoreError> {
        let site_key = site_key.map(str::to_owned);
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT id, site, name, created_at, revoked_at FROM agents \
                 WHERE ?1 IS NULL OR site = ?1 ORDER BY created_at, id",
            )
            .and_then(|mut st| {
                st.query_map([site_key], read_agent)?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(backend)
        })
        .await
    }

    async fn agent_by_token(
        &self,
        token_hash: Digest32,
    ) -> Result<Option<AgentRecord>, StoreError> {
        self.read(move |conn, _| {
            conn.prepare_cached(
                "SELECT id, site, name, created_at, revoked_at FROM agents WHERE token_hash = ?1",
            )
            .and_then(|mut st| st.query_row([token_hash], read_agent).optional())
            .map_err(backend)
        })
        .await
    }

    async fn revoke_agent(&self, id: &str, now_ms: u64) -> Result<RevokeOutcome, StoreError> {
        let id = id.to_owned();
        self.write(move |tx, _| {
            let revoked_at: Option<Option<i64>> = tx
                .prepare_cached("SELECT revoked_at FROM agents WHERE id = ?1")
                .and_then(|mut st| st.query_row([&id], |r| r.get(0)).optional())
                .map_err(backend)?;
            let outcome = match revoked_at {
                None => RevokeOutcome::NotFound,
                Some(Some(_)) => RevokeOutcome::AlreadyRevoked,
                Some(None) => {
                    tx.prepare_cached("UPDATE agents SET revoked_at = ?2 WHERE id = ?1")
                        .and_then(|mut st| st.execute(params![id, ms_to_sql(now_ms)]))
                        .map_err(backend)?;
                    RevokeOutcome::Revoked
                }
            };
            Ok(outcome)
        })
        .await
    }

    async fn begin_redeem(&self, attempt: RedeemAttempt) -> Result<RedeemStart, StoreError> {
        self.write(move |tx, hasher| {
            // One write transaction from the limit check to the recorded
            // failure, and one writer for all of them, so that concurrent
            // guesses see each other's failures. A live code records
            // nothing: an agent (or a whole call centre) redeeming many real
            // codes at once is never mistaken for a guesser.
            if let Some(lock) = lock_for(tx, &attempt)? {
                return Ok(RedeemStart::Locked(lock));
            }
            let code_hash = hasher.hash(&attempt.site_key, &attempt.code);
            if let Some(session_id) =
                live_code_session(tx, &attempt.site_key, &code_hash, attempt.now_ms)?
            {
                return Ok(RedeemStart::Live { session_id });
            }
            tx.prepare_cached(
                "INSERT INTO redeem_failures (site, agent_id, at) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    attempt.site_key,
                    attempt.agent_id,
                    ms_to_sql(attempt.now_ms)
                ])
            })
            .map_err(backend)?;
            Ok(RedeemStart::Failed {
                lock_started: lock_for(tx, &attempt)?,
            })
        })
        .await
    }

    async fn count_sessions(&self) -> Result<u64, StoreError> {
        self.read(|conn, _| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
                .map_err(backend)?;
            Ok(n.unsigned_abs())
        })
        .await
    }

    async fn count_live_codes(&self, site_key: &str, now_ms: u64) -> Result<u64, StoreError> {
        let site_key = site_key.to_owned();
        self.read(move |conn, _| live_codes(conn, &site_key, now_ms))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CreateLimits;
    use crate::secrets::{
        hash_token, new_device_token, new_session_id, new_stream_ticket, ticket_key,
    };
    use crate::store::{TypedVisitor, VerifiedUser};

    const T0: u64 = 1_700_000_000_000;

    fn new_session(site: &str, code: &str, now: u64, lifetime_ms: u64) -> NewSession {
        NewSession {
            id: new_session_id(),
            site_key: site.into(),
            codes: vec![code.into()],
            token_hash: hash_token(&new_device_token()),
            visitor: VisitorClaim {
                typed: Some(TypedVisitor {
                    name: Some("Ada".into()),
                    email: None,
                }),
                ..VisitorClaim::default()
            },
            created_at: now,
            expires_at: now + lifetime_ms,
            ticket_key: ticket_key(&new_stream_ticket()),
            ticket_expires_at: now + 300_000,
            address: None,
            limits: CreateLimits::OFF,
        }
    }

    fn open_temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.sqlite3")).unwrap();
        (dir, store)
    }

    fn created(outcome: CreateOutcome) -> Vec<SessionEvent> {
        match outcome {
            CreateOutcome::Created { events, .. } => events,
            other => panic!("not created: {other:?}"),
        }
    }

    async fn read(store: &SqliteStore, id: &str, now: u64) -> Session {
        store.session(id, now).await.unwrap().unwrap().session
    }

    fn dana() -> AgentInfo {
        AgentInfo {
            id: "agt_0000000000000001".into(),
            name: "Dana".into(),
        }
    }

    #[tokio::test]
    async fn a_live_code_cannot_be_issued_twice_for_a_site() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "012345", T0, 60_000);
        let events = created(store.create_session(a.clone()).await.unwrap());
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].seq, events[0].status.state),
            (1, SessionState::Pending)
        );
        let b = new_session("demo", "012345", T0 + 1, 60_000);
        assert_eq!(
            store.create_session(b.clone()).await.unwrap(),
            CreateOutcome::CodeTaken
        );
        // The same digits at another site are another code.
        let c = new_session("other", "012345", T0 + 1, 60_000);
        created(store.create_session(c).await.unwrap());
        assert_eq!(store.count_sessions().await.unwrap(), 2);
        assert_eq!(
            store
                .find_live_code("demo", "012345", T0 + 2)
                .await
                .unwrap(),
            Some(a.id)
        );
        assert_eq!(
            store.find_live_code("demo", "12345", T0 + 2).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn an_expired_code_passes_to_a_new_session() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "999999", T0, 1_000);
        created(store.create_session(a.clone()).await.unwrap());
        let b = new_session("demo", "999999", T0 + 1_000, 1_000);
        let events = created(store.create_session(b.clone()).await.unwrap());
        // The old holder's timeout is announced along with the new session.
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].session_id, a.id);
        assert_eq!(events[0].status.end_reason, Some(EndReason::PendingTimeout));
        let old = read(&store, &a.id, T0 + 1_000).await;
        assert_eq!(old.state, SessionState::Ended);
        assert_eq!(old.end_reason, Some(EndReason::PendingTimeout));
        assert_eq!(
            store
                .find_live_code("demo", "999999", T0 + 1_001)
                .await
                .unwrap(),
            Some(b.id)
        );
    }

    #[tokio::test]
    async fn reading_an_expired_session_ends_it_and_logs_the_event() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "111111", T0, 1_000);
        created(store.create_session(a.clone()).await.unwrap());
        let u = store.session(&a.id, T0 + 999).await.unwrap().unwrap();
        assert_eq!(u.session.state, SessionState::Pending);
        assert!(u.events.is_empty());
        assert_eq!(u.session.visitor_name.as_deref(), Some("Ada"));
        let u = store.session(&a.id, T0 + 1_000).await.unwrap().unwrap();
        assert_eq!(
            (u.session.state, u.session.end_reason),
            (SessionState::Ended, Some(EndReason::PendingTimeout))
        );
        assert_eq!(u.events.len(), 1);
        assert_eq!(u.events[0].seq, 2);
        // Reading again changes nothing more.
        assert!(store
            .session(&a.id, T0 + 5_000)
            .await
            .unwrap()
            .unwrap()
            .events
            .is_empty());
        // Time going back (a clock step) does not revive the code.
        assert_eq!(
            store.find_live_code("demo", "111111", T0).await.unwrap(),
            None
        );
        let log = store.events_after(&a.id, 0).await.unwrap();
        let states: Vec<_> = log.iter().map(|e| (e.seq, e.status.state)).collect();
        assert_eq!(
            states,
            vec![(1, SessionState::Pending), (2, SessionState::Ended)]
        );
    }

    #[tokio::test]
    async fn the_sweep_ends_only_what_is_due() {
        let (_dir, store) = open_temp();
        let short = new_session("demo", "000001", T0, 1_000);
        let long = new_session("demo", "000002", T0, 5_000);
        let asked = new_session("demo", "000003", T0, 60_000);
        for s in [&short, &long, &asked] {
            created(store.create_session(s.clone()).await.unwrap());
        }
        let redeem = Change::Redeem {
            agent: dana(),
            consent_expires_at: T0 + 1_500,
        };
        store.apply(&asked.id, redeem, T0).await.unwrap().unwrap();
        assert_eq!(store.count_live_codes("demo", T0).await.unwrap(), 2);
        let swept = store.sweep_expired(T0 + 2_000).await.unwrap();
        let mut ended: Vec<_> = swept
            .iter()
            .map(|e| (e.session_id.clone(), e.status.end_reason))
            .collect();
        ended.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want = vec![
            (short.id.clone(), Some(EndReason::PendingTimeout)),
            (asked.id.clone(), Some(EndReason::AuthorizingTimeout)),
        ];
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(ended, want);
        assert!(store.sweep_expired(T0 + 2_000).await.unwrap().is_empty());
        assert_eq!(
            store
                .find_live_code("demo", "000002", T0 + 2_000)
                .await
                .unwrap(),
            Some(long.id)
        );
    }

    #[tokio::test]
    async fn changes_follow_the_lifecycle_and_are_logged_in_order() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "424242", T0, 60_000);
        created(store.create_session(a.clone()).await.unwrap());
        // Consent before redemption is not a thing.
        let u = store
            .apply(&a.id, Change::Allow, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            u.refused,
            Some(IllegalTransition {
                from: SessionState::Pending,
                event: Event::Allow
            })
        );
        assert!(u.events.is_empty());
        let u = store
            .apply(
                &a.id,
                Change::Redeem {
                    agent: dana(),
                    consent_expires_at: T0 + 120_000,
                },
                T0 + 1,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.refused, None);
        assert_eq!(u.session.state, SessionState::Authorizing);
        assert_eq!(u.session.agent, Some(dana()));
        assert_eq!(u.events[0].status.consent_expires_at, Some(T0 + 120_000));
        // The code died with the redemption.
        assert_eq!(
            store
                .find_live_code("demo", "424242", T0 + 2)
                .await
                .unwrap(),
            None
        );
        // A second redemption loses.
        let again = Change::Redeem {
            agent: dana(),
            consent_expires_at: T0 + 200_000,
        };
        let u = store.apply(&a.id, again, T0 + 2).await.unwrap().unwrap();
        assert!(u.refused.is_some());
        let u = store
            .apply(&a.id, Change::Allow, T0 + 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.session.state, SessionState::Active);
        assert_eq!(u.session.status().consent_expires_at, None);
        let u = store
            .apply(&a.id, Change::AgentEnd, T0 + 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(u.session.end_reason, Some(EndReason::AgentEnded));
        let log = store.events_after(&a.id, 1).await.unwrap();
        let seen: Vec<_> = log.iter().map(|e| (e.seq, e.status.state)).collect();
        assert_eq!(
            seen,
            vec![
                (2, SessionState::Authorizing),
                (3, SessionState::Active),
                (4, SessionState::Ended)
            ]
        );
        assert_eq!(log[2].status.agent, Some(dana()), "the agent stays named");
        assert!(store
            .apply(&new_session_id(), Change::DeviceEnd, T0)
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_late_consent_meets_the_timeout_first() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "424242", T0, 60_000);
        created(store.create_session(a.clone()).await.unwrap());
        let redeem = Change::Redeem {
            agent: dana(),
            consent_expires_at: T0 + 10_000,
        };
        store.apply(&a.id, redeem, T0).await.unwrap().unwrap();
        let u = store
            .apply(&a.id, Change::Allow, T0 + 10_000)
            .await
            .unwrap()
            .unwrap();
        assert!(u.refused.is_some());
        assert_eq!(u.session.end_reason, Some(EndReason::AuthorizingTimeout));
        assert_eq!(u.events.len(), 1, "the timeout was committed and returned");
    }

    #[tokio::test]
    async fn failures_are_counted_and_lock_and_live_codes_are_not_failures() {
        let (_dir, store) = open_temp();
        let live = new_session("demo", "123123", T0, 600_000);
        created(store.create_session(live.clone()).await.unwrap());
        let attempt = |code: &str, now: u64| RedeemAttempt {
            site_key: "demo".into(),
            agent_id: "agt_a".into(),
            code: code.into(),
            limits: crate::config::RedeemLimits::default(),
            now_ms: now,
        };
        // A live code is found, and counts as no failure, however often.
        for _ in 0..10 {
            assert_eq!(
                store.begin_redeem(attempt("123123", T0)).await.unwrap(),
                RedeemStart::Live {
                    session_id: live.id.clone()
                }
            );
        }
        for i in 0..5 {
            let start = store.begin_redeem(attempt("000000", T0 + i)).await.unwrap();
            let RedeemStart::Failed { lock_started } = start else {
                panic!("wrong codes are not found: {start:?}");
            };
            assert_eq!(lock_started.is_some(), i == 4, "the fifth failure locks");
        }
        let RedeemStart::Locked(lock) = store
            .begin_redeem(attempt("123123", T0 + 10))
            .await
            .unwrap()
        else {
            panic!("the agent is locked");
        };
        assert_eq!(lock.until_ms, T0 + 600_000);
        // The sweep keeps failures for a day.
        store.sweep_expired(T0 + 20).await.unwrap();
        assert!(matches!(
            store
                .begin_redeem(attempt("123123", T0 + 30))
                .await
                .unwrap(),
            RedeemStart::Locked(_)
        ));
    }

    #[tokio::test]
    async fn tickets_are_bound_to_a_session_and_expire() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "555555", T0, 60_000);
        created(store.create_session(a.clone()).await.unwrap());
        assert_eq!(
            store.ticket_session(a.ticket_key, T0).await.unwrap(),
            Some(a.id.clone())
        );
        assert_eq!(
            store
                .ticket_session(a.ticket_key, T0 + 300_000)
                .await
                .unwrap(),
            None
        );
        let more = ticket_key(&new_stream_ticket());
        store.create_ticket(&a.id, more, T0 + 10).await.unwrap();
        assert_eq!(
            store.ticket_session(more, T0 + 9).await.unwrap(),
            Some(a.id)
        );
        store.sweep_expired(T0 + 10).await.unwrap();
        assert_eq!(store.ticket_session(more, T0).await.unwrap(), None, "swept");
    }

    #[tokio::test]
    async fn agents_are_added_found_by_token_hash_and_revoked() {
        let (_dir, store) = open_temp();
        let token = crate::secrets::new_api_token();
        store
            .add_agent(NewAgent {
                id: "agt_1".into(),
                site_key: "demo".into(),
                name: "Dana".into(),
                token_hash: hash_token(&token),
                created_at: T0,
            })
            .await
            .unwrap();
        let found = store
            .agent_by_token(hash_token(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((found.id.as_str(), found.revoked_at), ("agt_1", None));
        assert_eq!(store.agents(Some("demo")).await.unwrap().len(), 1);
        assert!(store.agents(Some("other")).await.unwrap().is_empty());
        assert_eq!(
            store.revoke_agent("agt_1", T0 + 1).await.unwrap(),
            RevokeOutcome::Revoked
        );
        assert_eq!(
            store.revoke_agent("agt_1", T0 + 2).await.unwrap(),
            RevokeOutcome::AlreadyRevoked
        );
        assert_eq!(
            store.revoke_agent("agt_2", T0).await.unwrap(),
            RevokeOutcome::NotFound
        );
        let found = store
            .agent_by_token(hash_token(&token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.revoked_at, Some(T0 + 1));
    }

    #[tokio::test]
    async fn a_version_1_database_is_migrated_with_its_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, created_at, \
             expires_at) VALUES ('0123456789abcdef0123456789abcdef', 'demo', NULL, ?1, \
             'pending', ?2, ?3)",
            params![[0u8; 32], ms_to_sql(T0), ms_to_sql(T0 + 60_000)],
        )
        .unwrap();
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        let s = read(&store, "0123456789abcdef0123456789abcdef", T0).await;
        assert_eq!((s.state, s.agent), (SessionState::Pending, None));
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    #[tokio::test]
    async fn a_version_2_database_gives_each_session_a_visitor_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        for (id, name) in [("0".repeat(32), None), ("1".repeat(32), Some("Ada"))] {
            conn.execute(
                "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, created_at, \
                 expires_at, visitor_name) VALUES (?1, 'demo', NULL, ?2, 'ended', ?3, ?4, ?5)",
                params![id, [0u8; 32], ms_to_sql(T0), ms_to_sql(T0 + 60_000), name],
            )
            .unwrap();
        }
        drop(conn);
        let store = SqliteStore::open(&path).unwrap();
        let anonymous = store
            .visitor(&"0".repeat(32), 10, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(anonymous.record.kind, IdentityKind::Anonymous);
        assert_eq!(anonymous.record.first_seen, T0);
        assert_eq!(anonymous.tickets.len(), 1);
        let typed = store
            .visitor(&"1".repeat(32), 10, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (typed.record.kind, typed.record.name.as_deref()),
            (IdentityKind::Typed, Some("Ada"))
        );
        assert_eq!(typed.tickets[0].session_id, "1".repeat(32));
    }

    #[tokio::test]
    async fn a_version_3_database_keeps_its_sessions_and_visitors_and_drops_its_tickets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let conn = Connection::open(&path).unwrap();
        for schema in [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3] {
            conn.execute_batch(schema).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        let (id, visitor) = ("a".repeat(32), "b".repeat(32));
        conn.execute(
            "INSERT INTO visitors (id, site_key, kind, visitor_id, name, first_seen) \
             VALUES (?1, 'demo', 'typed', ?2, 'Ada', ?3)",
            params![visitor, "c".repeat(32), ms_to_sql(T0)],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, created_at, \
             expires_at, visitor) VALUES (?1, 'demo', ?2, ?3, 'pending', ?4, ?5, ?6)",
            params![
                id,
                [1u8; 32],
                [0u8; 32],
                ms_to_sql(T0),
                ms_to_sql(T0 + 60_000),
                visitor
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO stream_tickets (ticket_hash, session_id, expires_at) VALUES (?1, ?2, ?3)",
            params![[2u8; 32], id, ms_to_sql(T0 + 300_000)],
        )
        .unwrap();
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let s = read(&store, &id, T0).await;
        assert_eq!(
            (s.state, s.visitor.as_deref()),
            (SessionState::Pending, Some(&*visitor))
        );
        let history = store.visitor(&id, 10, T0).await.unwrap().unwrap();
        assert_eq!(
            (history.record.kind, history.record.name.as_deref()),
            (IdentityKind::Typed, Some("Ada"))
        );
        // The old ticket is gone; a new one works.
        assert_eq!(store.ticket_session([2u8; 32], T0).await.unwrap(), None);
        let ticket = ticket_key(&new_stream_ticket());
        store
            .create_ticket(&id, ticket, T0 + 300_000)
            .await
            .unwrap();
        assert_eq!(
            store.ticket_session(ticket, T0).await.unwrap(),
            Some(id.clone())
        );
        // The code index still holds the pending session's code.
        let conn = Connection::open(&path).unwrap();
        let holder: String = conn
            .query_row(
                "SELECT id FROM sessions WHERE site_key = 'demo' AND code_hash = ?1",
                [[1u8; 32]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(holder, id);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE name LIKE '%_v4'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(tables.is_empty(), "{tables:?}");
    }

    fn with_visitor(mut new: NewSession, claim: VisitorClaim) -> NewSession {
        new.visitor = claim;
        new
    }

    fn anonymous(visitor_id: &str) -> VisitorClaim {
        VisitorClaim {
            visitor_id: Some(visitor_id.into()),
            ..VisitorClaim::default()
        }
    }

    fn verified(user_id: &str, name: Option<&str>, visitor_id: Option<&str>) -> VisitorClaim {
        VisitorClaim {
            visitor_id: visitor_id.map(str::to_owned),
            verified: Some(VerifiedUser {
                user_id: user_id.into(),
                name: name.map(str::to_owned),
                email: None,
                custom_data: BTreeMap::from([("plan".to_owned(), "Gold".to_owned())]),
            }),
            typed: None,
        }
    }

    async fn create(store: &SqliteStore, new: NewSession) -> (String, u64) {
        match store.create_session(new).await.unwrap() {
            CreateOutcome::Created {
                visitor, merged, ..
            } => (visitor, merged),
            other => panic!("not created: {other:?}"),
        }
    }

    /// A code request from `address` by anonymous visitor `vid`, with
    /// `limits`, at `now`; a fresh code each time.
    fn limited_request(vid: &str, address: &str, limits: CreateLimits, now: u64) -> NewSession {
        let mut new = new_session("demo", "000000", now, 600_000);
        new.codes = random_codes_for_test(now);
        new.visitor = VisitorClaim {
            visitor_id: Some(vid.into()),
            ..VisitorClaim::default()
        };
        new.address = Some(address.into());
        new.limits = limits;
        new
    }

    fn random_codes_for_test(seed: u64) -> Vec<String> {
        (0..8)
            .map(|i| format!("{:06}", (seed * 7 + i * 104_729) % 1_000_000))
            .collect()
    }

    #[tokio::test]
    async fn creation_limits_count_live_codes_and_the_last_minute_per_visitor_and_address() {
        let (_dir, store) = open_temp();
        let visitor = "ab".repeat(16);
        let limits = CreateLimits {
            visitor_live: 2,
            visitor_per_minute: 3,
            address_live: 4,
            address_per_minute: 10,
            site_live: 0,
        };
        // Two live codes for one visitor; the third is refused until the
        // first expires (10 minutes on), and nothing is written.
        let first = limited_request(&visitor, "198.51.100.1", limits, T0);
        let first_id = first.id.clone();
        created(store.create_session(first).await.unwrap());
        created(
            store
                .create_session(limited_request(
                    &visitor,
                    "198.51.100.1",
                    limits,
                    T0 + 1_000,
                ))
                .await
                .unwrap(),
        );
        let before = store.count_sessions().await.unwrap();
        let refused = store
            .create_session(limited_request(
                &visitor,
                "198.51.100.1",
                limits,
                T0 + 2_000,
            ))
            .await
            .unwrap();
        assert_eq!(
            refused,
            CreateOutcome::Limited(CreateLimited {
                scope: CreateScope::VisitorLive,
                until_ms: T0 + 600_000,
            })
        );
        assert_eq!(
            store.count_sessions().await.unwrap(),
            before,
            "nothing written"
        );

        // Cancelling one frees its place at once…
        store
            .apply(&first_id, Change::DeviceCancel, T0 + 3_000)
            .await
            .unwrap()
            .unwrap();
        let third = limited_request(&visitor, "198.51.100.1", limits, T0 + 4_000);
        let third_id = third.id.clone();
        created(store.create_session(third).await.unwrap());
        // …but a fourth request within the minute is over the rate, until
        // the first request's minute is over.
        store
            .apply(&third_id, Change::DeviceCancel, T0 + 4_500)
            .await
            .unwrap()
            .unwrap();
        let refused = store
            .create_session(limited_request(
                &visitor,
                "198.51.100.1",
                limits,
                T0 + 5_000,
            ))
            .await
            .unwrap();
        assert_eq!(
            refused,
            CreateOutcome::Limited(CreateLimited {
                scope: CreateScope::VisitorRate,
                until_ms: T0 + 60_000,
            })
        );

        // Other visitors on the same address count towards the address:
        // one live code is there, so three more fill its four.
        let mut n = 0;
        let refused = loop {
            let vid = format!("{n:032x}");
            let outcome = store
                .create_session(limited_request(
                    &vid,
                    "198.51.100.1",
                    limits,
                    T0 + 6_000 + n,
                ))
                .await
                .unwrap();
            if let CreateOutcome::Limited(limited) = outcome {
                break limited;
            }
            n += 1;
            assert!(n < 10, "the address limit never came");
        };
        assert_eq!(refused.scope, CreateScope::AddressLive);
        assert_eq!(n, 3);
        // Another address is not affected, and the address is not stored
        // in clear.
        created(
            store
                .create_session(limited_request(
                    &"cd".repeat(16),
                    "198.51.100.2",
                    limits,
                    T0 + 7_000,
                ))
                .await
                .unwrap(),
        );
        let in_clear: i64 = store
            .read(|conn, _| {
                conn.query_row(
                    "SELECT count(*) FROM sessions WHERE instr(address_key, '198.51') > 0",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await
            .unwrap();
        assert_eq!(in_clear, 0);

        // A minute later the rate allows again, and once the codes expire
        // the live limits do too.
        let later = T0 + 601_000;
        created(
            store
                .create_session(limited_request(&visitor, "198.51.100.1", limits, later))
                .await
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn an_anonymous_visitors_tickets_merge_into_the_user_once() {
        let (_dir, store) = open_temp();
        let vid = "ab".repeat(16);
        let a = with_visitor(new_session("demo", "000001", T0, 1_000), anonymous(&vid));
        let b = with_visitor(
            new_session("demo", "000002", T0 + 10, 1_000),
            anonymous(&vid),
        );
        let (anon_record, _) = create(&store, a.clone()).await;
        assert_eq!(create(&store, b.clone()).await, (anon_record.clone(), 0));
        // The same id at another site is another visitor.
        let elsewhere = with_visitor(new_session("other", "000003", T0, 1_000), anonymous(&vid));
        let (other_record, _) = create(&store, elsewhere.clone()).await;
        assert_ne!(other_record, anon_record);

        // The user existed before, with a name; their first contact was later.
        let old = with_visitor(
            new_session("demo", "000004", T0 + 20, 1_000),
            verified("u-1", Some("Alex"), None),
        );
        let (user_record, merged) = create(&store, old.clone()).await;
        assert_eq!(merged, 0);
        let login = with_visitor(
            new_session("demo", "000005", T0 + 30, 1_000),
            verified("u-1", None, Some(&vid)),
        );
        assert_eq!(
            create(&store, login.clone()).await,
            (user_record.clone(), 2)
        );
        let h = store
            .visitor(&login.id, 10, T0 + 1_005)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h.record.kind, IdentityKind::Verified);
        assert_eq!(
            h.record.name.as_deref(),
            Some("Alex"),
            "a left-out claim keeps the name"
        );
        assert_eq!(h.record.first_seen, T0, "the anonymous visitor came first");
        let ids: Vec<_> = h.tickets.iter().map(|t| t.session_id.as_str()).collect();
        assert_eq!(ids, [&login.id, &old.id, &b.id, &a.id], "newest first");
        // A code that expired unnoticed reads as timed out; a live one as pending.
        assert_eq!(h.tickets[3].end_reason, Some(EndReason::PendingTimeout));
        assert_eq!(h.tickets[0].state, SessionState::Pending);

        // Again with the same id: nothing left to merge; the id now names a
        // fresh anonymous visitor.
        let again = with_visitor(
            new_session("demo", "000006", T0 + 50, 1_000),
            verified("u-1", None, Some(&vid)),
        );
        assert_eq!(create(&store, again).await, (user_record.clone(), 0));
        let later = with_visitor(
            new_session("demo", "000007", T0 + 60, 1_000),
            anonymous(&vid),
        );
        let (fresh, _) = create(&store, later.clone()).await;
        assert_ne!(fresh, anon_record);
        let h = store
            .visitor(&later.id, 10, T0 + 60)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.record.kind, h.tickets.len()),
            (IdentityKind::Anonymous, 1)
        );
        // The other site's visitor was not touched.
        let h = store.visitor(&elsewhere.id, 10, T0).await.unwrap().unwrap();
        assert_eq!((h.record.id, h.tickets.len()), (other_record, 1));
    }

    #[tokio::test]
    async fn a_typed_visitor_is_never_merged() {
        let (_dir, store) = open_temp();
        let vid = "cd".repeat(16);
        let mut claim = anonymous(&vid);
        claim.typed = Some(TypedVisitor {
            name: None,
            email: Some("alex@example.com".into()),
        });
        let typed = with_visitor(new_session("demo", "000001", T0, 1_000), claim);
        let (typed_record, _) = create(&store, typed.clone()).await;
        let login = with_visitor(
            new_session("demo", "000002", T0 + 10, 1_000),
            verified("u-1", Some("Alex"), Some(&vid)),
        );
        let (user_record, merged) = create(&store, login.clone()).await;
        assert_eq!(merged, 0);
        assert_ne!(user_record, typed_record);
        let h = store.visitor(&typed.id, 10, T0).await.unwrap().unwrap();
        assert_eq!(h.record.kind, IdentityKind::Typed);
        assert_eq!(h.tickets.len(), 1);
        let h = store.visitor(&login.id, 10, T0).await.unwrap().unwrap();
        assert_eq!(h.tickets.len(), 1);
        assert_eq!(
            h.record.email, None,
            "nothing typed reaches the user's record"
        );
    }

    #[tokio::test]
    async fn codes_and_tokens_are_not_stored_in_clear_and_the_secret_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let a = new_session("demo", "271828", T0, 60_000);
        created(store.create_session(a.clone()).await.unwrap());
        drop(store);

        let conn = Connection::open(&path).unwrap();
        let secret: Vec<u8> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'code_secret'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(secret.len(), 32);
        let dump: String = conn
            .query_row(
                "SELECT group_concat(quote(id) || quote(site_key) || quote(code_hash) || \
                 quote(token_hash) || quote(visitor_name)) FROM sessions",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!dump.contains("271828"), "{dump}");
        assert!(
            !dump.contains(&hex::encode(b"271828").to_uppercase()),
            "{dump}"
        );
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store
                .find_live_code("demo", "271828", T0 + 1)
                .await
                .unwrap(),
            Some(a.id)
        );
        let conn = Connection::open(&path).unwrap();
        let again: Vec<u8> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'code_secret'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(again, secret);
    }

    #[tokio::test]
    async fn the_first_free_candidate_code_is_chosen() {
        let (_dir, store) = open_temp();
        created(
            store
                .create_session(new_session("demo", "000001", T0, 60_000))
                .await
                .unwrap(),
        );
        let mut b = new_session("demo", "000001", T0, 60_000);
        b.codes = vec!["000001".into(), "000002".into(), "000003".into()];
        let CreateOutcome::Created { code, .. } = store.create_session(b.clone()).await.unwrap()
        else {
            panic!("000002 was free");
        };
        assert_eq!(code, "000002");
        assert_eq!(
            store.find_live_code("demo", "000002", T0).await.unwrap(),
            Some(b.id)
        );
        let mut c = new_session("demo", "000001", T0, 60_000);
        c.codes = vec!["000001".into(), "000002".into()];
        assert_eq!(
            store.create_session(c).await.unwrap(),
            CreateOutcome::CodeTaken
        );
        assert_eq!(store.count_sessions().await.unwrap(), 2);
    }

    /// Many requests at once share commits (group commit): each still gets
    /// a code of its own, and each answered code is in the file when it is
    /// opened again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_codes_are_unique_and_all_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        // 300 requests whose first 63 candidates are drawn from 400 codes
        // clash often, so requests in one batch compete for the same codes;
        // the last candidate is the request's own, so every one gets a code.
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut new = new_session("demo", "000000", T0, 60_000);
                    new.codes = (0..63)
                        .map(|k| format!("{:06}", (i * 7 + k * 13) % 400))
                        .chain([format!("{:06}", 1_000 + i)])
                        .collect();
                    let id = new.id.clone();
                    match store.create_session(new).await.unwrap() {
                        CreateOutcome::Created { code, .. } => Some((code, id)),
                        CreateOutcome::CodeTaken => None,
                        CreateOutcome::Limited(l) => panic!("limits are off: {l:?}"),
                    }
                })
            })
            .collect();
        let mut issued = BTreeMap::new();
        for task in tasks {
            if let Some((code, id)) = task.await.unwrap() {
                assert!(issued.insert(code, id).is_none(), "a code was issued twice");
            }
        }
        assert_eq!(issued.len(), 300);
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.count_sessions().await.unwrap(), issued.len() as u64);
        for (code, id) in &issued {
            assert_eq!(
                store
                    .find_live_code("demo", code, T0 + 1)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(id)
            );
        }
    }

    /// Under writes that never pause, the WAL still stops growing at its
    /// bound (plus one commit's frames).
    #[tokio::test]
    async fn the_wal_stays_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let limits = WalLimits {
            checkpoint_at: 8,
            max_pages: 40,
        };
        let store = SqliteStore::open_with(&path, limits).unwrap();
        let wal = dir.path().join("t.sqlite3-wal");
        // A header, then frames of a page and a 24-byte frame header; one
        // code request writes well under 40 frames.
        let bound = 32 + (2 * 40) * (4096 + 24);
        for i in 0..500 {
            let new = new_session("demo", &format!("{i:06}"), T0, 60_000);
            created(store.create_session(new).await.unwrap());
            let size = std::fs::metadata(&wal).unwrap().len();
            assert!(size <= bound, "the WAL is {size} bytes after {i} codes");
        }
        let counts = store.checkpoints();
        assert!(
            counts.background + counts.inline > 0,
            "500 codes made no checkpoint: {counts:?}"
        );
        // Every code is in the database after the checkpoints.
        assert_eq!(store.count_sessions().await.unwrap(), 500);
    }

    #[tokio::test]
    async fn the_file_is_in_wal_mode() {
        let (dir, _store) = open_temp();
        let conn = Connection::open(dir.path().join("t.sqlite3")).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
