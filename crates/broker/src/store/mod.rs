//! Where sessions, their codes and events, stream tickets, agents and failed
//! redemptions live.
//!
//! [`Store`] is the one interface the rest of the broker uses.
//! [`sqlite::SqliteStore`] is the embedded default; a Redis backend for
//! several broker replicas will implement the same trait, so nothing here
//! may assume SQL.
//!
//! Every method that depends on time takes `now_ms` from the caller rather
//! than reading a clock itself: the application owns the clock (see
//! [`crate::clock`]), and tests move it.
//!
//! A session's state changes only through [`Store::apply`] (and the timeouts
//! that every method applies when they are due), each checked against
//! [`crate::lifecycle::next`] and written as a compare-and-set on the state
//! together with the session's next [`SessionEvent`]. The methods return the
//! events they committed; the caller publishes them (see [`crate::hub`]).
//!
//! Codes are handed to the store in clear and it keeps only their keyed hash
//! (see [`crate::secrets::CodeHasher`]); the key is kept by the store too, so
//! that it lives exactly as long as the codes hashed with it.
//!
//! Every session belongs to one visitor record ([`VisitorRecord`]): the
//! widget's anonymous visitor, the site's verified user, or a record of its
//! own when the request named nobody. [`Store::create_session`] finds or
//! makes that record, and merges an anonymous visitor's earlier sessions
//! into a verified user's record, in the same transaction as the session.

pub mod redis;
pub mod sqlite;

use std::collections::BTreeMap;

use agent_assist_protocol::{
    AgentInfo, EndReason, IdentityKind, SessionState, SessionStatus, Ticket,
};
use async_trait::async_trait;

use crate::config::{CreateLimits, RedeemLimits};
use crate::lifecycle::{Event, IllegalTransition};
use crate::limits::Lock;
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
    /// What the visitor typed about themselves with this session's code
    /// request (unverified); who the visitor is lives in their record.
    pub visitor_name: Option<String>,
    pub visitor_email: Option<String>,
    /// The id of the visitor record the session belongs to.
    pub visitor: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    /// When the code stops being redeemable, milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// The agent who redeemed the code, from `authorizing` on.
    pub agent: Option<AgentInfo>,
    /// When the consent prompt times out; set on redemption.
    pub consent_expires_at: Option<u64>,
}

impl Session {
    /// The session as both sides see it.
    pub fn status(&self) -> SessionStatus {
        SessionStatus {
            session_id: self.id.clone(),
            state: self.state,
            end_reason: self.end_reason,
            expires_at: self.expires_at,
            agent: self.agent.clone(),
            // The deadline means something only while the prompt is up.
            consent_expires_at: self
                .consent_expires_at
                .filter(|_| self.state == SessionState::Authorizing),
        }
    }
}

/// One entry of a session's event log: its status right after a change.
/// `seq` counts from 1 (the `pending` state at creation) with no gaps, and
/// is the SSE event id, so a client that reconnects says where it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    pub session_id: String,
    pub seq: u64,
    pub status: SessionStatus,
    /// Milliseconds since the Unix epoch.
    pub at: u64,
}

/// A session to record, with the codes it may hold and its first stream
/// ticket.
#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub site_key: String,
    /// Candidate codes in clear, in the order to try them: the session gets
    /// the first one no live session of the site holds. Several at once, so
    /// that a crowded code space costs one store call, not one per try. The
    /// store keeps only the chosen code's keyed hash.
    pub codes: Vec<String>,
    pub token_hash: Digest32,
    /// Who the visitor is, as the code request established it.
    pub visitor: VisitorClaim,
    pub created_at: u64,
    pub expires_at: u64,
    /// The key of the stream ticket handed out with the code
    /// ([`crate::secrets::ticket_key`]).
    pub ticket_key: Digest32,
    pub ticket_expires_at: u64,
    /// The network address the request came from, as a limit counts it
    /// (see [`crate::extract::ClientAddress::key`]); the store keeps only
    /// a keyed hash of it. `None` when unknown.
    pub address: Option<String>,
    /// The site's creation limits, checked in the same transaction that
    /// records the session. Counting a site's live codes reads one index
    /// entry per code, so the caller sets `site_live` to 0 while the site
    /// is far from it (see [`crate::state::SiteCodes`]).
    pub limits: CreateLimits,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The codes must never reach a log line, not even through `{:?}`.
        f.debug_struct("NewSession")
            .field("id", &self.id)
            .field("site_key", &self.site_key)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who a new session's visitor is, as its code request established it
/// (checked by [`crate::identity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VisitorClaim {
    /// The widget's anonymous visitor id (32 lowercase hex), if it sent one.
    pub visitor_id: Option<String>,
    /// The site's logged-in user, as its server signed it.
    pub verified: Option<VerifiedUser>,
    /// What the visitor typed into the form (unverified).
    pub typed: Option<TypedVisitor>,
}

/// A site's user whose identity token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    pub user_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub custom_data: BTreeMap<String, String>,
}

/// What a visitor typed into the form; at least one field is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedVisitor {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// A visitor of one site, as the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorRecord {
    /// The store's own id for the record (32 lowercase hex).
    pub id: String,
    pub site_key: String,
    pub kind: IdentityKind,
    /// The widget's anonymous id (anonymous and typed records that have one).
    pub visitor_id: Option<String>,
    /// The site's own user id (verified records only).
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub custom_data: BTreeMap<String, String>,
    /// The visitor's first contact (code request), ms since the Unix epoch.
    pub first_seen: u64,
}

/// A visitor record with their sessions, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorHistory {
    pub record: VisitorRecord,
    pub tickets: Vec<Ticket>,
}

/// What [`Store::create_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The session was recorded and holds `code`, one of the candidates.
    /// `events` are the session's first event and, if the code's previous
    /// holder had expired unnoticed, that session's `pending_timeout`.
    /// `visitor` is the id of the visitor record the session belongs to;
    /// `merged` counts the sessions of an anonymous visitor that this
    /// request moved to a verified user's record.
    Created {
        code: String,
        events: Vec<SessionEvent>,
        visitor: String,
        merged: u64,
    },
    /// Every candidate code is held by another live session of the site;
    /// nothing was recorded.
    CodeTaken,
    /// The visitor or the address is over one of its creation limits;
    /// nothing was recorded.
    Limited(CreateLimited),
}

/// Which creation limit refused a code request, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateLimited {
    pub scope: CreateScope,
    /// When a new request can succeed (ms since the epoch): the oldest of
    /// the counted codes expires, or leaves the minute.
    pub until_ms: u64,
}

/// The creation limits ([`CreateLimits`]), by what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateScope {
    VisitorLive,
    VisitorRate,
    AddressLive,
    AddressRate,
    /// The whole site holds `site_live` live codes.
    SiteLive,
}

/// A change someone asks for. Timeouts are not among them: they happen
/// when they are due, whoever touches the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An agent redeemed the session's code.
    Redeem {
        agent: AgentInfo,
        consent_expires_at: u64,
    },
    Allow,
    Deny,
    DeviceCancel,
    DeviceEnd,
    AgentEnd,
}

impl Change {
    /// The lifecycle event this change is.
    pub fn event(&self) -> Event {
        match self {
            Change::Redeem { .. } => Event::Redeem,
            Change::Allow => Event::Allow,
            Change::Deny => Event::Deny,
            Change::DeviceCancel => Event::DeviceCancel,
            Change::DeviceEnd => Event::DeviceEnd,
            Change::AgentEnd => Event::AgentEnd,
        }
    }
}

/// A session after a store call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    /// The session as it is now.
    pub session: Session,
    /// What this call committed, oldest first: a timeout that was due
    /// and/or the requested change. The caller publishes them.
    pub events: Vec<SessionEvent>,
    /// Set when the requested change was not allowed in the session's
    /// state (after any due timeout); the change was not made.
    pub refused: Option<IllegalTransition>,
}

/// An agent with a broker-issued API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// `agt_` and 16 hex digits.
    pub id: String,
    pub site_key: String,
    pub name: String,
    pub created_at: u64,
    /// Set once the token is revoked; it then never works again.
    pub revoked_at: Option<u64>,
}

/// An agent to record.
#[derive(Clone)]
pub struct NewAgent {
    pub id: String,
    pub site_key: String,
    pub name: String,
    /// SHA-256 of the API token; the token itself is shown once and forgotten.
    pub token_hash: Digest32,
    pub created_at: u64,
}

impl std::fmt::Debug for NewAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAgent")
            .field("id", &self.id)
            .field("site_key", &self.site_key)
            .finish_non_exhaustive()
    }
}

/// What [`Store::revoke_agent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    Revoked,
    AlreadyRevoked,
    NotFound,
}

/// A redemption attempt, as [`Store::begin_redeem`] takes it.
#[derive(Clone)]
pub struct RedeemAttempt {
    pub site_key: String,
    pub agent_id: String,
    /// The code in clear; only its keyed hash is looked up.
    pub code: String,
    pub limits: RedeemLimits,
    pub now_ms: u64,
}

impl std::fmt::Debug for RedeemAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As with `NewSession`: never the code.
        f.debug_struct("RedeemAttempt")
            .field("site_key", &self.site_key)
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

/// What [`Store::begin_redeem`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedeemStart {
    /// The agent or its site is locked; nothing was recorded or looked up.
    Locked(Lock),
    /// The code is live, held by this session; nothing was recorded. The
    /// caller applies [`Change::Redeem`]; losing that race to another agent
    /// is not a failure either.
    Live { session_id: String },
    /// The code is not live: a failure was recorded, and this is the lock
    /// it started, if any.
    Failed { lock_started: Option<Lock> },
}

/// A failure inside the store. The routes turn it into a 500 answer and log it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend (database, network, thread pool) failed.
    #[error("store backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend cannot be reached right now (Redis is down or too slow);
    /// nothing was changed, and a retry may succeed. Answered with a 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record could not be understood; the data was written by something else.
    #[error("corrupt record in store: {0}")]
    Corrupt(String),
}

/// Opens the store at `address`: the SQLite file (created if it does not
/// exist) or a connection to Redis.
pub async fn open(
    address: &crate::config::StoreAddress,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    use crate::config::StoreAddress;
    Ok(match address {
        StoreAddress::Sqlite(path) => std::sync::Arc::new(sqlite::SqliteStore::open(path)?),
        StoreAddress::Redis(url) => std::sync::Arc::new(redis::RedisStore::open(url).await?),
    })
}

/// The state of the broker that outlives a request.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records `new` as a pending session holding the first free code of
    /// `new.codes` for `new.site_key`, with its first event and its stream
    /// ticket, atomically. A code is taken while another session of the
    /// same site holds it, is still pending and has not expired; a row
    /// holding the code that has expired is ended (`pending_timeout`) and
    /// the code passes to the new session.
    ///
    /// In the same transaction the session gets its visitor record:
    /// - a verified user's record (keyed by the site's user id), created or
    ///   brought up to date from the signed claims; if the request also
    ///   names an anonymous visitor (`visitor_id`) whose record is of kind
    ///   anonymous, every session of that record moves to the user's, the
    ///   user's fields win and the anonymous record only fills blanks, and
    ///   the anonymous record is deleted. A typed record is never merged;
    /// - else the record of `visitor_id`, created if new, updated with
    ///   anything typed (which makes it typed);
    /// - else a new record of its own.
    async fn create_session(&self, new: NewSession) -> Result<CreateOutcome, StoreError>;

    /// The visitor record of session `session_id` with its newest
    /// `max_tickets` sessions (newest first; states as of `now_ms`, due
    /// timeouts counted). `None` when no session has this id.
    async fn visitor(
        &self,
        session_id: &str,
        max_tickets: usize,
        now_ms: u64,
    ) -> Result<Option<VisitorHistory>, StoreError>;

    /// The session with this id, after any timeout due at `now_ms` has been
    /// applied (so callers never see a pending session with a dead code, or
    /// an authorizing one whose prompt has run out). `refused` is `None`.
    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<SessionUpdate>, StoreError>;

    /// Applies any due timeout, then `change` if [`crate::lifecycle::next`]
    /// allows it from the state the session is in, as a compare-and-set on
    /// that state. `None` when no session has this id.
    async fn apply(
        &self,
        id: &str,
        change: Change,
        now_ms: u64,
    ) -> Result<Option<SessionUpdate>, StoreError>;

    /// The id of the session holding `code` for `site_key`, if that code is
    /// live (pending and not expired at `now_ms`).
    async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError>;

    /// Applies every timeout due at `now_ms` (expired codes, unanswered
    /// consent prompts) and returns the events; also forgets expired stream
    /// tickets and failures older than any limit looks at.
    async fn sweep_expired(&self, now_ms: u64) -> Result<Vec<SessionEvent>, StoreError>;

    /// The session's events with `seq > after`, oldest first.
    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<SessionEvent>, StoreError>;

    /// Records a stream ticket (its [`crate::secrets::ticket_key`]) for `session_id`.
    async fn create_ticket(
        &self,
        session_id: &str,
        ticket_key: Digest32,
        expires_at: u64,
    ) -> Result<(), StoreError>;

    /// The session a ticket is for, if it exists and has not expired at `now_ms`.
    async fn ticket_session(
        &self,
        ticket_key: Digest32,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError>;

    /// Records an agent.
    async fn add_agent(&self, agent: NewAgent) -> Result<(), StoreError>;

    /// Every agent (of `site_key`, if given), oldest first.
    async fn agents(&self, site_key: Option<&str>) -> Result<Vec<AgentRecord>, StoreError>;

    /// The agent whose API token has this SHA-256, revoked or not.
    async fn agent_by_token(&self, token_hash: Digest32)
        -> Result<Option<AgentRecord>, StoreError>;

    /// Revokes an agent's token for good.
    async fn revoke_agent(&self, id: &str, now_ms: u64) -> Result<RevokeOutcome, StoreError>;

    /// Starts a redemption, atomically: refuses if a limit is in force;
    /// otherwise records a failure for the agent and its site first (so that
    /// concurrent guesses count against each other exactly) and looks up
    /// the live code. See [`RedeemStart`].
    async fn begin_redeem(&self, attempt: RedeemAttempt) -> Result<RedeemStart, StoreError>;

    /// Number of sessions recorded, in any state.
    async fn count_sessions(&self) -> Result<u64, StoreError>;

    /// Number of live codes of `site_key` at `now_ms`.
    async fn count_live_codes(&self, site_key: &str, now_ms: u64) -> Result<u64, StoreError>;
}

/// What a new session's visitor record becomes, as [`Store::create_session`]
/// describes it: worked out from the records the request names, so that
/// every backend merges the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorPlan {
    /// The record the session joins, as it is to be written.
    pub record: VisitorRecord,
    /// The record was found (else it is new).
    pub existed: bool,
    /// An anonymous record whose sessions move to `record`, and which is
    /// then deleted.
    pub merge: Option<VisitorRecord>,
}

/// The plan for `claim` on `site_key` at `now_ms`, given the site's record
/// of the claim's verified user (`by_user`) and of its anonymous visitor id
/// (`by_visitor`), as found; `new_id` names a record made here.
pub fn plan_visitor(
    site_key: &str,
    claim: &VisitorClaim,
    by_user: Option<VisitorRecord>,
    by_visitor: Option<VisitorRecord>,
    now_ms: u64,
    new_id: impl FnOnce() -> String,
) -> VisitorPlan {
    let fresh = |kind: IdentityKind, id: String| VisitorRecord {
        id,
        site_key: site_key.to_owned(),
        kind,
        visitor_id: None,
        user_id: None,
        name: None,
        email: None,
        custom_data: BTreeMap::new(),
        first_seen: now_ms,
    };
    if let Some(user) = &claim.verified {
        let existed = by_user.is_some();
        let mut record = match by_user {
            Some(mut record) => {
                // The newest signed claims are the site's word on its user
                // now; a claim left out keeps what was known.
                record.kind = IdentityKind::Verified;
                if user.name.is_some() {
                    record.name.clone_from(&user.name);
                }
                if user.email.is_some() {
                    record.email.clone_from(&user.email);
                }
                if !user.custom_data.is_empty() {
                    record.custom_data.clone_from(&user.custom_data);
                }
                record
            }
            None => {
                let mut record = fresh(IdentityKind::Verified, new_id());
                record.user_id = Some(user.user_id.clone());
                record.name.clone_from(&user.name);
                record.email.clone_from(&user.email);
                record.custom_data.clone_from(&user.custom_data);
                record
            }
        };
        // Only an anonymous record merges: a typed one holds what someone
        // typed, unverified, and must never join a verified user's history.
        let merge = by_visitor.filter(|a| a.kind == IdentityKind::Anonymous && a.id != record.id);
        if let Some(anonymous) = &merge {
            // The user's record wins; the anonymous one fills its blanks.
            if record.name.is_none() {
                record.name.clone_from(&anonymous.name);
            }
            if record.email.is_none() {
                record.email.clone_from(&anonymous.email);
            }
            for (key, value) in &anonymous.custom_data {
                record
                    .custom_data
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            record.first_seen = record.first_seen.min(anonymous.first_seen);
        }
        return VisitorPlan {
            record,
            existed,
            merge,
        };
    }
    let existed = by_visitor.is_some();
    let record = match by_visitor {
        Some(mut record) => {
            if let Some(typed) = &claim.typed {
                // What the visitor typed last is what they go by now.
                record.kind = IdentityKind::Typed;
                if typed.name.is_some() {
                    record.name.clone_from(&typed.name);
                }
                if typed.email.is_some() {
                    record.email.clone_from(&typed.email);
                }
            }
            record
        }
        None => {
            let kind = match claim.typed {
                Some(_) => IdentityKind::Typed,
                None => IdentityKind::Anonymous,
            };
            let mut record = fresh(kind, new_id());
            record.visitor_id.clone_from(&claim.visitor_id);
            if let Some(typed) = &claim.typed {
                record.name.clone_from(&typed.name);
                record.email.clone_from(&typed.email);
            }
            record
        }
    };
    VisitorPlan {
        record,
        existed,
        merge: None,
    }
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // So that `AppState` can derive `Debug` without every backend having
        // to print itself (and risk printing a secret).
        f.write_str("dyn Store")
    }
}
