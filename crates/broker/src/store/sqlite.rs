//! The embedded store: one SQLite file, no setup.
//!
//! Everything the broker knows is in that file — sessions, hashed codes and
//! hashed device tokens, and the secret the codes are hashed with — so a
//! broker that is killed and started again on the same file carries on where
//! it stopped. The file is in WAL mode with `synchronous=NORMAL`: a committed
//! change survives the process being killed; only a power cut may lose the
//! last few commits, never corrupt the file.
//!
//! A code is held by the session's row itself (`code_hash`) while the session
//! is pending, and the column is cleared the moment the code dies (cancel,
//! expiry, and later redemption). A unique index on `(site_key, code_hash)`
//! then makes "unique among the site's live codes" a property of the data,
//! not of the code that writes it.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_assist_protocol::{EndReason, SessionState};
use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{CancelOutcome, CreateOutcome, NewSession, Session, Store, StoreError};
use crate::secrets::{self, CodeHasher, CODE_SECRET_LEN};

/// The schema version this code writes, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// The key of the code-hashing secret in the `meta` table.
const CODE_SECRET_KEY: &str = "code_secret";

const SCHEMA: &str = "
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

const SESSION_COLUMNS: &str = "id, site_key, state, end_reason, token_hash, visitor_name, \
     visitor_email, created_at, expires_at";

/// The SQLite backend of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    // One connection behind a std (not tokio) mutex, used only inside
    // `spawn_blocking`: rusqlite calls block the thread, so they must not run
    // on the async workers, and the lock is never held across an `.await`, so
    // the cheaper std mutex is the right one. SQLite serialises writers
    // anyway; one connection also keeps the prepared-statement cache warm.
    conn: Mutex<Connection>,
    hasher: CodeHasher,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. On first use this
    /// creates the schema and the code-hashing secret.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path.as_ref()).map_err(backend)?;
        Self::from_connection(conn)
    }

    fn from_connection(mut conn: Connection) -> Result<Self, StoreError> {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL mode");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        // Only this process should use the file, but if an operator's tool
        // holds a lock for a moment, wait for it rather than fail a request.
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        conn.set_prepared_statement_cache_capacity(32);

        migrate(&mut conn)?;
        let secret = load_or_create_secret(&mut conn)?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                hasher: CodeHasher::new(&secret),
            }),
        })
    }

    /// Runs `f` with the connection on the blocking thread pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &CodeHasher) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held leaves it poisoned, but not the
            // data: an open rusqlite transaction rolls back when dropped, so
            // the connection is consistent and can go on being used.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn, &inner.hasher)
        })
        .await
        .map_err(backend)?
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
    match version {
        0 => {
            tx.execute_batch(SCHEMA).map_err(backend)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(backend)?;
        }
        SCHEMA_VERSION => {}
        newer => {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {newer}; this broker knows only up to \
                 {SCHEMA_VERSION} (was it written by a newer broker?)"
            )))
        }
    }
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

fn state_from_sql(s: &str) -> Option<SessionState> {
    Some(match s {
        "pending" => SessionState::Pending,
        "authorizing" => SessionState::Authorizing,
        "active" => SessionState::Active,
        "ended" => SessionState::Ended,
        _ => return None,
    })
}

fn reason_to_sql(reason: EndReason) -> &'static str {
    match reason {
        EndReason::PendingTimeout => "pending_timeout",
        EndReason::AuthorizingTimeout => "authorizing_timeout",
        EndReason::DeviceCancelled => "device_cancelled",
        EndReason::ConsentDenied => "consent_denied",
        EndReason::DeviceEnded => "device_ended",
        EndReason::AgentEnded => "agent_ended",
    }
}

fn reason_from_sql(s: &str) -> Option<EndReason> {
    Some(match s {
        "pending_timeout" => EndReason::PendingTimeout,
        "authorizing_timeout" => EndReason::AuthorizingTimeout,
        "device_cancelled" => EndReason::DeviceCancelled,
        "consent_denied" => EndReason::ConsentDenied,
        "device_ended" => EndReason::DeviceEnded,
        "agent_ended" => EndReason::AgentEnded,
        _ => return None,
    })
}

/// A column that holds something this code never writes.
fn bad_column(idx: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, what.into())
}

fn read_session(row: &Row<'_>) -> rusqlite::Result<Session> {
    let state: String = row.get(2)?;
    let state = state_from_sql(&state).ok_or_else(|| bad_column(2, format!("state {state:?}")))?;
    let end_reason = match row.get::<_, Option<String>>(3)? {
        None => None,
        Some(r) => {
            Some(reason_from_sql(&r).ok_or_else(|| bad_column(3, format!("end_reason {r:?}")))?)
        }
    };
    let ms = |idx: usize| -> rusqlite::Result<u64> {
        let v: i64 = row.get(idx)?;
        u64::try_from(v).map_err(|_| bad_column(idx, format!("negative time {v}")))
    };
    Ok(Session {
        id: row.get(0)?,
        site_key: row.get(1)?,
        state,
        end_reason,
        token_hash: row.get(4)?,
        visitor_name: row.get(5)?,
        visitor_email: row.get(6)?,
        created_at: ms(7)?,
        expires_at: ms(8)?,
    })
}

fn select_session(conn: &Connection, id: &str) -> rusqlite::Result<Option<Session>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"
    ))?
    .query_row([id], read_session)
    .optional()
}

/// Ends a session and kills its code.
fn end_session(conn: &Connection, id: &str, reason: EndReason) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE sessions SET state = 'ended', end_reason = ?2, code_hash = NULL WHERE id = ?1",
    )?
    .execute(params![id, reason_to_sql(reason)])?;
    Ok(())
}

/// True when `session` is pending with a code that has expired at `now_ms`.
fn pending_and_expired(session: &Session, now_ms: u64) -> bool {
    session.state == SessionState::Pending && session.expires_at <= now_ms
}

/// If `session` is pending and expired, ends it (`pending_timeout`) in the
/// database and in `session`.
fn expire_if_due(conn: &Connection, session: &mut Session, now_ms: u64) -> rusqlite::Result<()> {
    if pending_and_expired(session, now_ms) {
        end_session(conn, &session.id, EndReason::PendingTimeout)?;
        session.state = SessionState::Ended;
        session.end_reason = Some(EndReason::PendingTimeout);
        tracing::info!(session_id = %session.id, site = %session.site_key, "code expired");
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_session(&self, new: NewSession) -> Result<CreateOutcome, StoreError> {
        self.with_conn(move |conn, hasher| {
            let code_hash = hasher.hash(&new.site_key, &new.code);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let holder: Option<(String, i64)> = tx
                .prepare_cached(
                    "SELECT id, expires_at FROM sessions WHERE site_key = ?1 AND code_hash = ?2",
                )
                .and_then(|mut st| {
                    st.query_row(params![new.site_key, code_hash], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            if let Some((holder_id, holder_expires_at)) = holder {
                if holder_expires_at > ms_to_sql(new.created_at) {
                    // Dropping `tx` rolls back; nothing was written.
                    return Ok(CreateOutcome::CodeTaken);
                }
                // The code's previous holder expired without anyone noticing
                // yet; it ends now and the code is free again.
                end_session(&tx, &holder_id, EndReason::PendingTimeout).map_err(backend)?;
            }
            tx.prepare_cached(
                "INSERT INTO sessions (id, site_key, code_hash, token_hash, state, end_reason, \
                 visitor_name, visitor_email, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, 'pending', NULL, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    new.id,
                    new.site_key,
                    code_hash,
                    new.token_hash,
                    new.visitor_name,
                    new.visitor_email,
                    ms_to_sql(new.created_at),
                    ms_to_sql(new.expires_at),
                ])
            })
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(CreateOutcome::Created)
        })
        .await
    }

    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<Session>, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn, _| {
            let Some(mut session) = select_session(conn, &id).map_err(backend)? else {
                return Ok(None);
            };
            expire_if_due(conn, &mut session, now_ms).map_err(backend)?;
            Ok(Some(session))
        })
        .await
    }

    async fn cancel(&self, id: &str, now_ms: u64) -> Result<CancelOutcome, StoreError> {
        let id = id.to_owned();
        self.with_conn(move |conn, _| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(mut session) = select_session(&tx, &id).map_err(backend)? else {
                return Ok(CancelOutcome::NotFound);
            };
            expire_if_due(&tx, &mut session, now_ms).map_err(backend)?;
            let outcome = match session.state {
                SessionState::Pending | SessionState::Authorizing => {
                    end_session(&tx, &id, EndReason::DeviceCancelled).map_err(backend)?;
                    session.state = SessionState::Ended;
                    session.end_reason = Some(EndReason::DeviceCancelled);
                    CancelOutcome::Cancelled(session)
                }
                SessionState::Active => CancelOutcome::Active(session),
                SessionState::Ended => CancelOutcome::AlreadyEnded(session),
            };
            tx.commit().map_err(backend)?;
            Ok(outcome)
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
        self.with_conn(move |conn, hasher| {
            let code_hash = hasher.hash(&site_key, &code);
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
        })
        .await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.with_conn(move |conn, _| {
            let n = conn
                .prepare_cached(
                    "UPDATE sessions SET state = 'ended', end_reason = 'pending_timeout', \
                     code_hash = NULL WHERE state = 'pending' AND expires_at <= ?1",
                )
                .and_then(|mut st| st.execute([ms_to_sql(now_ms)]))
                .map_err(backend)?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn count_sessions(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn, _| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get(0))
                .map_err(backend)?;
            Ok(n.unsigned_abs())
        })
        .await
    }

    async fn count_live_codes(&self, site_key: &str, now_ms: u64) -> Result<u64, StoreError> {
        let site_key = site_key.to_owned();
        self.with_conn(move |conn, _| {
            let n: i64 = conn
                .prepare_cached(
                    "SELECT COUNT(*) FROM sessions WHERE site_key = ?1 AND code_hash IS NOT NULL \
                     AND state = 'pending' AND expires_at > ?2",
                )
                .and_then(|mut st| st.query_row(params![site_key, ms_to_sql(now_ms)], |r| r.get(0)))
                .map_err(backend)?;
            Ok(n.unsigned_abs())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{hash_token, new_device_token, new_session_id};

    const T0: u64 = 1_700_000_000_000;

    fn new_session(site: &str, code: &str, now: u64, lifetime_ms: u64) -> NewSession {
        NewSession {
            id: new_session_id(),
            site_key: site.into(),
            code: code.into(),
            token_hash: hash_token(&new_device_token()),
            visitor_name: Some("Ada".into()),
            visitor_email: None,
            created_at: now,
            expires_at: now + lifetime_ms,
        }
    }

    fn open_temp() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.sqlite3")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_live_code_cannot_be_issued_twice_for_a_site() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "012345", T0, 60_000);
        assert_eq!(
            store.create_session(a.clone()).await.unwrap(),
            CreateOutcome::Created
        );
        let b = new_session("demo", "012345", T0 + 1, 60_000);
        assert_eq!(
            store.create_session(b.clone()).await.unwrap(),
            CreateOutcome::CodeTaken
        );
        // The same digits at another site are another code.
        let c = new_session("other", "012345", T0 + 1, 60_000);
        assert_eq!(
            store.create_session(c).await.unwrap(),
            CreateOutcome::Created
        );
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
        store.create_session(a.clone()).await.unwrap();
        let b = new_session("demo", "999999", T0 + 1_000, 1_000);
        assert_eq!(
            store.create_session(b.clone()).await.unwrap(),
            CreateOutcome::Created
        );
        let old = store.session(&a.id, T0 + 1_000).await.unwrap().unwrap();
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
    async fn reading_an_expired_session_ends_it() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "111111", T0, 1_000);
        store.create_session(a.clone()).await.unwrap();
        let s = store.session(&a.id, T0 + 999).await.unwrap().unwrap();
        assert_eq!(s.state, SessionState::Pending);
        assert_eq!(s.visitor_name.as_deref(), Some("Ada"));
        let s = store.session(&a.id, T0 + 1_000).await.unwrap().unwrap();
        assert_eq!(
            (s.state, s.end_reason),
            (SessionState::Ended, Some(EndReason::PendingTimeout))
        );
        // Time going back (a clock step) does not revive the code.
        assert_eq!(
            store.find_live_code("demo", "111111", T0).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_sweep_ends_only_expired_pending_sessions() {
        let (_dir, store) = open_temp();
        let short = new_session("demo", "000001", T0, 1_000);
        let long = new_session("demo", "000002", T0, 5_000);
        store.create_session(short.clone()).await.unwrap();
        store.create_session(long.clone()).await.unwrap();
        assert_eq!(store.count_live_codes("demo", T0).await.unwrap(), 2);
        assert_eq!(store.sweep_expired(T0 + 2_000).await.unwrap(), 1);
        assert_eq!(store.sweep_expired(T0 + 2_000).await.unwrap(), 0);
        assert_eq!(
            store.find_live_code("demo", "000001", T0).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .find_live_code("demo", "000002", T0 + 2_000)
                .await
                .unwrap(),
            Some(long.id)
        );
    }

    #[tokio::test]
    async fn cancel_ends_and_is_idempotent() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "424242", T0, 60_000);
        store.create_session(a.clone()).await.unwrap();
        let CancelOutcome::Cancelled(s) = store.cancel(&a.id, T0 + 1).await.unwrap() else {
            panic!("first cancel should cancel");
        };
        assert_eq!(s.end_reason, Some(EndReason::DeviceCancelled));
        let CancelOutcome::AlreadyEnded(again) = store.cancel(&a.id, T0 + 2).await.unwrap() else {
            panic!("second cancel should change nothing");
        };
        assert_eq!(again, s);
        assert_eq!(
            store
                .find_live_code("demo", "424242", T0 + 3)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.cancel(&new_session_id(), T0).await.unwrap(),
            CancelOutcome::NotFound
        );
    }

    #[tokio::test]
    async fn cancelling_an_expired_code_reports_the_timeout() {
        let (_dir, store) = open_temp();
        let a = new_session("demo", "424242", T0, 1_000);
        store.create_session(a.clone()).await.unwrap();
        let CancelOutcome::AlreadyEnded(s) = store.cancel(&a.id, T0 + 1_000).await.unwrap() else {
            panic!("an expired session is already over");
        };
        assert_eq!(s.end_reason, Some(EndReason::PendingTimeout));
    }

    #[tokio::test]
    async fn codes_and_tokens_are_not_stored_in_clear_and_the_secret_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        let a = new_session("demo", "271828", T0, 60_000);
        store.create_session(a.clone()).await.unwrap();
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
    async fn the_file_is_in_wal_mode() {
        let (dir, _store) = open_temp();
        let conn = Connection::open(dir.path().join("t.sqlite3")).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
