//! Where sessions and their codes live.
//!
//! [`Store`] is the one interface the routes use. [`sqlite::SqliteStore`] is
//! the embedded default; a Redis backend for several broker replicas will
//! implement the same trait, so nothing here may assume SQL.
//!
//! Every method that depends on expiry takes `now_ms` from the caller rather
//! than reading a clock itself: the application owns the clock (see
//! [`crate::clock`]), and tests move it.
//!
//! Codes are handed to the store in clear and it keeps only their keyed hash
//! (see [`crate::secrets::CodeHasher`]); the key is kept by the store too, so
//! that it lives exactly as long as the codes hashed with it.

pub mod sqlite;

use agent_assist_protocol::{EndReason, SessionState, SessionStatus};
use async_trait::async_trait;

use crate::secrets::Digest32;

/// A session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// 32 lowercase hex digits.
    pub id: String,
    /// The key of the site the code was issued for.
    pub site_key: String,
    pub state: SessionState,
    /// Set exactly when `state` is [`SessionState::Ended`].
    pub end_reason: Option<EndReason>,
    /// SHA-256 of the device token.
    pub token_hash: Digest32,
    /// What the visitor said about themselves (unverified).
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When the code stops being redeemable, milliseconds since the Unix epoch.
    pub expires_at: u64,
}

impl Session {
    /// The session as the device sees it.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            session_id: self.id.clone(),
            state: self.state,
            end_reason: self.end_reason,
            expires_at: self.expires_at,
        }
    }
}

/// A session to record, with the code it will hold.
#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub site_key: String,
    /// The code in clear; the store keeps only its keyed hash.
    pub code: String,
    pub token_hash: Digest32,
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    pub created_at: u64,
    pub expires_at: u64,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code must never reach a log line, not even through `{:?}`.
        f.debug_struct("NewSession")
            .field("id", &self.id)
            .field("site_key", &self.site_key)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What [`Store::create_session`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The session was recorded and holds the code.
    Created,
    /// Another live session of the site holds this code; nothing was
    /// recorded. The caller draws a new code and tries again.
    CodeTaken,
}

/// What [`Store::cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The session was pending or authorizing and is now ended with
    /// [`EndReason::DeviceCancelled`]; its code is no longer live.
    Cancelled(Session),
    /// The session had already ended (for whatever reason); nothing changed.
    AlreadyEnded(Session),
    /// The session is active; cancelling does not apply (ending does).
    /// Nothing changed.
    Active(Session),
    /// No session has this id.
    NotFound,
}

/// A failure inside the store. The routes turn it into a 500 answer and log it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend (database, network, thread pool) failed.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A record could not be understood; the data was written by something else.
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
}

/// The state of the broker that outlives a request.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records `new` as a pending session holding `new.code` for
    /// `new.site_key`, atomically. A code is taken while another session of
    /// the same site holds it, is still pending and has not expired; a row
    /// holding the code that has expired is ended (`pending_timeout`) and
    /// the code passes to the new session.
    async fn create_session(&self, new: NewSession) -> Result<CreateOutcome, StoreError>;

    /// The session with this id. A pending session whose code has expired
    /// at `now_ms` is ended (`pending_timeout`) first, so callers never see
    /// a pending session with a dead code.
    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<Session>, StoreError>;

    /// The device withdraws its code: a pending or authorizing session ends
    /// with `device_cancelled` and its code stops being live.
    async fn cancel(&self, id: &str, now_ms: u64) -> Result<CancelOutcome, StoreError>;

    /// The id of the session holding `code` for `site_key`, if that code is
    /// live (pending and not expired at `now_ms`).
    async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError>;

    /// Ends (`pending_timeout`) every pending session whose code has expired
    /// at `now_ms`; returns how many were ended.
    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Number of sessions recorded, in any state.
    async fn count_sessions(&self) -> Result<u64, StoreError>;

    /// Number of live codes of `site_key` at `now_ms`.
    async fn count_live_codes(&self, site_key: &str, now_ms: u64) -> Result<u64, StoreError>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // So that `AppState` can derive `Debug` without every backend having
        // to print itself (and risk printing a secret).
        f.write_str("dyn Store")
    }
}
