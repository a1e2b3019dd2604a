//! The Redis backend of [`Store`], for several broker replicas sharing one
//! Redis (or any server speaking its protocol, such as Valkey).
//!
//! Every change is one Lua script (Redis runs a script alone, so it is
//! atomic across replicas); the decisions that need the broker's own rules
//! (the lifecycle, who a visitor is) are made in Rust from what was read,
//! and the script commits them only if what they were made from is still
//! there: a compare-and-set on the session's state, or on the visitor
//! record's version. A replica that loses such a race reads again and
//! decides again.
//!
//! Key layout (see the README's "Redis" section), with `S` = `aa:{site}:`:
//! everything of a site is under its hash tag `{site}`, so each script
//! touches one Redis Cluster slot. Lookups that start from an id alone are
//! pointers outside the site's slot, written before what they point to (a
//! pointer to nothing is harmless and expires):
//! - `S sess:<id>` (hash) a session; `S ev:<id>` (list) its events, `seq`
//!   = position; `S code:<hash>` the session holding a code;
//! - `S live` / `S due` (sorted sets) pending sessions by their code's
//!   expiry, authorizing ones by their prompt's (what the sweep reads);
//!   `S n` sessions made;
//! - `S v:<id>` (hash: `ver`, `rec`) a visitor record; `S vid:<visitor id>`
//!   and `S uid:<user id>` find it; `S vs:<id>` its sessions by creation;
//!   `S vl:<id>`, `S vr:<id>`, `S al:<address>`, `S ar:<address>` the live
//!   and recent codes the creation limits count;
//! - `S f` and `S f:<agent>` (sorted sets) failed redemptions;
//! - `aa:sid:<id>` a session's site; `aa:tk:<key>` a stream ticket;
//!   `aa:sites` the sites with data; `aa:secret` the code hashing key;
//! - `aa:{agents}:…` the agents (one slot: there are few).
//!
//! Codes and tickets expire by Redis TTL as well as by the broker's clock,
//! which decides; an ended session and its events are kept for
//! [`RETAIN_MS`], then Redis forgets them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use agent_assist_protocol::{
    AgentInfo, EndReason, IdentityKind, SessionState, SessionStatus, Ticket,
};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use serde::{Deserialize, Serialize};

use super::{
    plan_visitor, AgentRecord, Change, CreateLimited, CreateOutcome, CreateScope, NewAgent,
    NewSession, RedeemAttempt, RedeemStart, RevokeOutcome, Session, SessionEvent, SessionUpdate,
    Store, StoreError, VisitorHistory, VisitorRecord,
};
use crate::lifecycle::{self, Event, IllegalTransition};
use crate::limits::{self, Counted};
use crate::secrets::{self, CodeHasher, Digest32, CODE_SECRET_LEN};

/// How long an ended session, its events and a visitor record nobody came
/// back to are kept: 30 days.
pub const RETAIN_MS: u64 = 30 * limits::DAY_MS;

/// How long a request waits for Redis before it is answered with a 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Candidate codes tried in a code request's first script call.
const FIRST_CANDIDATES: usize = 8;

/// How many times a change is decided again after losing a race.
const MAX_RETRIES: usize = 16;

const CREATE: &str = include_str!("redis/create.lua");
const APPLY: &str = include_str!("redis/apply.lua");
const REDEEM: &str = include_str!("redis/redeem.lua");
const HISTORY: &str = include_str!("redis/history.lua");

/// The visitor records a request names, read in one step.
const LOOKUP: &str = r"
local function find(index)
  local id = redis.call('GET', index)
  if not id then return {'', '', ''} end
  local f = redis.call('HMGET', ARGV[1] .. 'v:' .. id, 'ver', 'rec')
  return {id, f[1] or '', f[2] or ''}
end
local u, v = find(KEYS[1]), find(KEYS[2])
return {u[1], u[2], u[3], v[1], v[2], v[3]}
";

/// The session holding a live code, if any.
const LIVE_CODE: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then return false end
local f = redis.call('HMGET', ARGV[1] .. holder, 'state', 'x')
if f[1] == 'pending' and tonumber(f[2]) > tonumber(ARGV[2]) then return holder end
return false
";

/// Revokes an agent: `nf`, `already` or `ok`.
const REVOKE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'nf' end
if redis.call('HEXISTS', KEYS[1], 'revoked') == 1 then return 'already' end
redis.call('HSET', KEYS[1], 'revoked', ARGV[1])
return 'ok'
";

/// The Redis backend.
pub struct RedisStore {
    conn: ConnectionManager,
    hasher: CodeHasher,
    /// Sessions' sites, as their pointers said (a session's site never
    /// changes, so this never goes stale).
    sites: Mutex<HashMap<String, String>>,
    scripts: Scripts,
}

struct Scripts {
    create: Script,
    apply: Script,
    redeem: Script,
    history: Script,
    lookup: Script,
    live_code: Script,
    revoke: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

/// Most session sites remembered before the memory is cleared.
const SITE_CACHE: usize = 100_000;

fn err(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped() {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(Box::new(e))
    }
}

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// `aa:{site}:`, the prefix of everything of a site.
fn prefix(site: &str) -> String {
    format!("aa:{{{site}}}:")
}

fn sid_key(id: &str) -> String {
    format!("aa:sid:{id}")
}

fn ticket_redis_key(key: &Digest32) -> String {
    format!("aa:tk:{}", hex::encode(key))
}

const SITES_KEY: &str = "aa:sites";
const SECRET_KEY: &str = "aa:secret";
const AGENTS_ALL: &str = "aa:{agents}:all";

fn agent_key(id: &str) -> String {
    format!("aa:{{agents}}:a:{id}")
}

fn agent_token_key(hash: &Digest32) -> String {
    format!("aa:{{agents}}:tok:{}", hex::encode(hash))
}

/// A visitor record as stored (`rec`), JSON.
#[derive(Serialize, Deserialize)]
struct StoredVisitor {
    id: String,
    site: String,
    kind: IdentityKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visitor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    custom: BTreeMap<String, String>,
    first_seen: u64,
}

impl From<&VisitorRecord> for StoredVisitor {
    fn from(v: &VisitorRecord) -> Self {
        StoredVisitor {
            id: v.id.clone(),
            site: v.site_key.clone(),
            kind: v.kind,
            visitor_id: v.visitor_id.clone(),
            user_id: v.user_id.clone(),
            name: v.name.clone(),
            email: v.email.clone(),
            custom: v.custom_data.clone(),
            first_seen: v.first_seen,
        }
    }
}

impl From<StoredVisitor> for VisitorRecord {
    fn from(v: StoredVisitor) -> Self {
        VisitorRecord {
            id: v.id,
            site_key: v.site,
            kind: v.kind,
            visitor_id: v.visitor_id,
            user_id: v.user_id,
            name: v.name,
            email: v.email,
            custom_data: v.custom,
            first_seen: v.first_seen,
        }
    }
}

fn parse_visitor(json: &str) -> Result<VisitorRecord, StoreError> {
    serde_json::from_str::<StoredVisitor>(json)
        .map(Into::into)
        .map_err(|e| corrupt(format!("visitor record: {e}")))
}

/// An event as stored in a session's list (its `seq` is its position).
#[derive(Serialize, Deserialize)]
struct StoredEvent {
    at: u64,
    status: SessionStatus,
}

fn event_json(status: &SessionStatus, at: u64) -> Result<String, StoreError> {
    serde_json::to_string(&StoredEvent {
        at,
        status: status.clone(),
    })
    .map_err(|e| StoreError::Backend(Box::new(e)))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn array(v: Value) -> Result<Vec<Value>, StoreError> {
    match v {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(format!("unexpected answer from Redis: {other:?}"))),
    }
}

fn digest(hex_text: &str) -> Option<Digest32> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// A session from its hash's fields.
fn parse_session(id: &str, f: &HashMap<String, String>) -> Result<Session, StoreError> {
    let bad = |what: &str| corrupt(format!("session {id}: bad or missing {what}"));
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let opt = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
    let state = f
        .get("state")
        .and_then(|s| SessionState::from_name(s))
        .ok_or_else(|| bad("state"))?;
    let end_reason = match opt("end") {
        None => None,
        Some(r) => Some(EndReason::from_name(&r).ok_or_else(|| bad("end reason"))?),
    };
    let agent = match (opt("aid"), opt("an")) {
        (Some(id), Some(name)) => Some(AgentInfo { id, name }),
        _ => None,
    };
    Ok(Session {
        id: id.to_owned(),
        site_key: f.get("site").cloned().ok_or_else(|| bad("site"))?,
        state,
        end_reason,
        token_hash: f
            .get("tok")
            .and_then(|t| digest(t))
            .ok_or_else(|| bad("token"))?,
        visitor_name: opt("vn"),
        visitor_email: opt("ve"),
        visitor: opt("vis"),
        created_at: num("c").ok_or_else(|| bad("created_at"))?,
        expires_at: num("x").ok_or_else(|| bad("expires_at"))?,
        agent,
        consent_expires_at: num("cx"),
    })
}

/// The consent prompt's deadline, which the sweep looks for in `S due`
/// (a pending code's is its score in `S live`).
fn deadline(s: &Session) -> Option<u64> {
    match s.state {
        SessionState::Authorizing => s.consent_expires_at,
        _ => None,
    }
}

/// Moves `session` by `event` if the lifecycle allows it (in memory).
fn step(
    session: &mut Session,
    event: Event,
    redeem: Option<(&AgentInfo, u64)>,
) -> Result<(), IllegalTransition> {
    let (to, reason) = lifecycle::next(session.state, event)?;
    session.state = to;
    session.end_reason = reason;
    if let Some((agent, consent_expires_at)) = redeem {
        session.agent = Some(agent.clone());
        session.consent_expires_at = Some(consent_expires_at);
    }
    Ok(())
}

/// A session as read, with what only the store needs of it.
struct Stored {
    session: Session,
    /// The hash of its code (hex), while it is pending.
    code: String,
    /// The hash of the address it was asked from (hex), if known.
    address: String,
}

/// What a change does to a session, decided from one read of it.
struct Decided {
    session: Session,
    /// The statuses to log, oldest first, with what caused them.
    steps: Vec<(SessionStatus, Event)>,
    refused: Option<IllegalTransition>,
}

/// Applies the timeout due at `now_ms` to `read`, then `change` (if any).
fn decide(read: &Session, change: Option<&Change>, now_ms: u64) -> Decided {
    let mut session = read.clone();
    let mut steps = Vec::new();
    if let Some(event) = lifecycle::due_timeout(
        session.state,
        session.expires_at,
        session.consent_expires_at,
        now_ms,
    ) {
        if step(&mut session, event, None).is_ok() {
            steps.push((session.status(), event));
        }
    }
    let mut refused = None;
    if let Some(change) = change {
        let redeem = match change {
            Change::Redeem {
                agent,
                consent_expires_at,
            } => Some((agent, *consent_expires_at)),
            _ => None,
        };
        match step(&mut session, change.event(), redeem) {
            Ok(()) => steps.push((session.status(), change.event())),
            Err(illegal) => refused = Some(illegal),
        }
    }
    Decided {
        session,
        steps,
        refused,
    }
}

/// The redemption limits' windows, as `limits::current_lock` asks about
/// them: whose failures, n, since.
fn lock_queries(attempt: &RedeemAttempt) -> Vec<(Counted, u32, u64)> {
    let mut asked = Vec::new();
    let _ = limits::current_lock(&attempt.limits, attempt.now_ms, |counted, n, since| {
        asked.push((counted, n, since));
        Ok::<_, std::convert::Infallible>(None)
    });
    asked
}

/// The lock `current_lock` finds in the failure times Redis answered, one
/// per query (in the order of [`lock_queries`]).
fn lock_from(attempt: &RedeemAttempt, ats: &[Value]) -> Option<limits::Lock> {
    let mut i = 0;
    limits::current_lock(&attempt.limits, attempt.now_ms, |_, _, _| {
        let at = ats.get(i).and_then(int).filter(|t| *t >= 0);
        i += 1;
        Ok::<_, std::convert::Infallible>(at.map(i64::unsigned_abs))
    })
    .unwrap_or(None)
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://`, `rediss://` for TLS,
    /// `redis+unix://` or `unix://` for a socket) and reads (or makes) the
    /// code hashing key every replica shares.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("rediss:") {
            // rustls needs a process-wide crypto provider; an error means
            // one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Backend(format!("the Redis address {url:?} is not valid: {e}").into())
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // A request does not wait for Redis to come back: it gets a 503
            // at once and the manager reconnects in the background.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(err)?;
        let candidate = hex::encode(secrets::new_code_secret());
        let (secret,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(SECRET_KEY)
            .arg(candidate)
            .arg("NX")
            .ignore()
            .get(SECRET_KEY)
            .query_async(&mut conn)
            .await
            .map_err(err)?;
        let mut key = [0u8; CODE_SECRET_LEN];
        hex::decode_to_slice(&secret, &mut key).map_err(|_| {
            corrupt(format!(
                "{SECRET_KEY} is not {CODE_SECRET_LEN} bytes of hex"
            ))
        })?;
        // Loaded once here, so the first requests do not all miss them (a
        // Redis that restarts forgets them; they are loaded again then).
        for code in [CREATE, APPLY, REDEEM, HISTORY, LOOKUP, LIVE_CODE, REVOKE] {
            let _: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(code)
                .query_async(&mut conn)
                .await
                .map_err(err)?;
        }
        Ok(RedisStore {
            conn,
            hasher: CodeHasher::new(&key),
            sites: Mutex::new(HashMap::new()),
            scripts: Scripts {
                create: Script::new(CREATE),
                apply: Script::new(APPLY),
                redeem: Script::new(REDEEM),
                history: Script::new(HISTORY),
                lookup: Script::new(LOOKUP),
                live_code: Script::new(LIVE_CODE),
                revoke: Script::new(REVOKE),
            },
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn remember_site(&self, id: &str, site: &str) {
        let mut sites = self.sites.lock().unwrap_or_else(PoisonError::into_inner);
        if sites.len() >= SITE_CACHE {
            sites.clear();
        }
        sites.insert(id.to_owned(), site.to_owned());
    }

    /// The site of session `id`, if it exists.
    async fn site_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        if let Some(site) = self
            .sites
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(Some(site.clone()));
        }
        let site: Option<String> = redis::cmd("GET")
            .arg(sid_key(id))
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        if let Some(site) = &site {
            self.remember_site(id, site);
        }
        Ok(site)
    }

    /// Session `id` of `site`, with its code's and address's hashes (hex;
    /// set while it is pending).
    async fn read_session(&self, site: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        let mut fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("{}sess:{id}", prefix(site)))
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(Stored {
            session: parse_session(id, &fields)?,
            code: fields.remove("code").unwrap_or_default(),
            address: fields.remove("addr").unwrap_or_default(),
        }))
    }

    /// Reads session `id`, applies the due timeout and `change`, and commits
    /// the result as a compare-and-set; decides again if it lost a race.
    async fn update(
        &self,
        id: &str,
        change: Option<&Change>,
        now_ms: u64,
    ) -> Result<Option<SessionUpdate>, StoreError> {
        let Some(site) = self.site_of(id).await? else {
            return Ok(None);
        };
        for _ in 0..MAX_RETRIES {
            let Some(read) = self.read_session(&site, id).await? else {
                return Ok(None);
            };
            let decided = decide(&read.session, change, now_ms);
            if decided.steps.is_empty() {
                return Ok(Some(SessionUpdate {
                    session: decided.session,
                    events: Vec::new(),
                    refused: decided.refused,
                }));
            }
            if let Some(events) = self.commit(&read, &decided, now_ms).await? {
                return Ok(Some(SessionUpdate {
                    session: decided.session,
                    events,
                    refused: decided.refused,
                }));
            }
        }
        Err(StoreError::Unavailable(format!(
            "session {id} kept changing under this replica"
        )))
    }

    /// Writes `decided` if the session is still as `read`; `None` if not.
    async fn commit(
        &self,
        stored: &Stored,
        decided: &Decided,
        now_ms: u64,
    ) -> Result<Option<Vec<SessionEvent>>, StoreError> {
        let read = &stored.session;
        let p = prefix(&read.site_key);
        let id = &read.id;
        let after = &decided.session;
        let mut events = Vec::with_capacity(decided.steps.len());
        for (status, event) in &decided.steps {
            events.push(event_json(status, now_ms)?);
            match event {
                Event::CodeExpired => {
                    tracing::info!(session_id = %id, site = %read.site_key, "code expired");
                }
                Event::ConsentTimeout => {
                    tracing::info!(session_id = %id, site = %read.site_key, "consent prompt timed out");
                }
                _ => {}
            }
        }
        let leaves_pending =
            read.state == SessionState::Pending && after.state != SessionState::Pending;
        let ended = after.state == SessionState::Ended;
        let mut fields: Vec<(&str, String)> = vec![
            ("state", after.state.as_str().to_owned()),
            (
                "end",
                after
                    .end_reason
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
            ),
        ];
        if let Some(agent) = &after.agent {
            fields.push(("aid", agent.id.clone()));
            fields.push(("an", agent.name.clone()));
        }
        if let Some(cx) = after.consent_expires_at {
            fields.push(("cx", cx.to_string()));
        }
        let visitor = read.visitor.clone().unwrap_or_default();
        let mut inv = self.scripts.apply.prepare_invoke();
        inv.key(format!("{p}sess:{id}"))
            .key(format!("{p}ev:{id}"))
            .key(format!("{p}live"))
            .key(format!("{p}due"))
            .key(format!("{p}code:{}", stored.code))
            .key(format!("{p}vl:{visitor}"))
            .key(format!("{p}al:{}", stored.address))
            .arg(id)
            .arg(read.state.as_str())
            .arg(&visitor)
            .arg(if leaves_pending { "1" } else { "0" })
            .arg(deadline(after).map(|d| d.to_string()).unwrap_or_default())
            .arg(if ended { "1" } else { "0" })
            .arg(RETAIN_MS)
            .arg(events.len());
        for e in &events {
            inv.arg(e);
        }
        for (k, v) in &fields {
            inv.arg(*k).arg(v);
        }
        let answer = array(inv.invoke_async(&mut self.conn()).await.map_err(err)?)?;
        match answer.first().and_then(text).as_deref() {
            Some("ok") => {
                let last = answer.get(1).and_then(int).unwrap_or(0).unsigned_abs();
                let first = last + 1 - decided.steps.len() as u64;
                Ok(Some(
                    decided
                        .steps
                        .iter()
                        .enumerate()
                        .map(|(i, (status, _))| SessionEvent {
                            session_id: id.clone(),
                            seq: first + i as u64,
                            status: status.clone(),
                            at: now_ms,
                        })
                        .collect(),
                ))
            }
            Some("conflict") => Ok(None),
            _ => Err(corrupt(format!("apply script answered {answer:?}"))),
        }
    }

    /// The visitor records `claim` names: by user id and by visitor id,
    /// each with the version read.
    async fn lookup(
        &self,
        p: &str,
        new: &NewSession,
    ) -> Result<[(String, String, Option<VisitorRecord>); 2], StoreError> {
        let uid = new.visitor.verified.as_ref().map(|u| &u.user_id);
        let vid = new.visitor.visitor_id.as_ref();
        if uid.is_none() && vid.is_none() {
            return Ok(Default::default());
        }
        let answer = array(
            self.scripts
                .lookup
                .key(uid.map_or_else(|| format!("{p}none"), |u| format!("{p}uid:{u}")))
                .key(vid.map_or_else(|| format!("{p}none"), |v| format!("{p}vid:{v}")))
                .arg(p)
                .invoke_async(&mut self.conn())
                .await
                .map_err(err)?,
        )?;
        let s = |i: usize| answer.get(i).and_then(text).unwrap_or_default();
        let rec = |i: usize| -> Result<Option<VisitorRecord>, StoreError> {
            let json = s(i);
            if json.is_empty() {
                Ok(None)
            } else {
                parse_visitor(&json).map(Some)
            }
        };
        Ok([(s(0), s(1), rec(2)?), (s(3), s(4), rec(5)?)])
    }

    /// One try at [`Store::create_session`]; `None` when a visitor record
    /// changed between the read and the write.
    async fn try_create(
        &self,
        new: &NewSession,
        codes: &[String],
    ) -> Result<Option<CreateOutcome>, StoreError> {
        let p = prefix(&new.site_key);
        let [(user_index, user_ver, by_user), (vid_index, vid_ver, by_visitor)] =
            self.lookup(&p, new).await?;
        let plan = plan_visitor(
            &new.site_key,
            &new.visitor,
            by_user,
            by_visitor,
            new.created_at,
            secrets::new_session_id,
        );
        let rid = plan.record.id.clone();
        let verified = new.visitor.verified.is_some();
        let record_ver = if !plan.existed {
            String::new()
        } else if verified {
            user_ver
        } else {
            vid_ver.clone()
        };
        let merge_ver = if plan.merge.is_some() {
            vid_ver
        } else {
            String::new()
        };
        let merge_id = plan
            .merge
            .as_ref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        // The visitor-id index: set for a new record that has one; dropped
        // with a merged record; else left.
        let vid_value = if plan.merge.is_some() {
            "-".to_owned()
        } else if !plan.existed && plan.record.visitor_id.is_some() {
            rid.clone()
        } else {
            String::new()
        };
        let uid_value = if verified && !plan.existed {
            rid.clone()
        } else {
            String::new()
        };
        let address = new.address.as_deref().map(|a| {
            let digest = self.hasher.hash(&new.site_key, &format!("address:{a}"));
            hex::encode(&digest[..16])
        });
        let typed = new.visitor.typed.as_ref();
        let status = SessionStatus {
            session_id: new.id.clone(),
            state: SessionState::Pending,
            end_reason: None,
            expires_at: new.expires_at,
            agent: None,
            consent_expires_at: None,
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("site", new.site_key.clone()),
            ("state", "pending".into()),
            ("tok", hex::encode(new.token_hash)),
            ("vis", rid.clone()),
            ("c", new.created_at.to_string()),
            ("x", new.expires_at.to_string()),
        ];
        if let Some(name) = typed.and_then(|t| t.name.clone()) {
            fields.push(("vn", name));
        }
        if let Some(email) = typed.and_then(|t| t.email.clone()) {
            fields.push(("ve", email));
        }
        if let Some(a) = &address {
            fields.push(("addr", a.clone()));
        }
        let l = &new.limits;
        let addr = address.clone().unwrap_or_default();
        let uid = new.visitor.verified.as_ref().map(|u| u.user_id.as_str());
        let vid = new.visitor.visitor_id.as_deref();
        let mut inv = self.scripts.create.prepare_invoke();
        inv.key(format!("{p}sess:{}", new.id))
            .key(format!("{p}ev:{}", new.id))
            .key(format!("{p}live"))
            .key(format!("{p}due"))
            .key(format!("{p}n"))
            .key(format!("{p}v:{rid}"))
            .key(format!("{p}vs:{rid}"))
            .key(format!("{p}vl:{rid}"))
            .key(format!("{p}vr:{rid}"))
            .key(format!("{p}al:{addr}"))
            .key(format!("{p}ar:{addr}"))
            .key(format!("{p}v:{merge_id}"))
            .key(format!("{p}vs:{merge_id}"))
            .key(format!("{p}vl:{merge_id}"))
            .key(format!("{p}vr:{merge_id}"))
            .key(vid.map_or_else(|| format!("{p}none"), |v| format!("{p}vid:{v}")))
            .key(uid.map_or_else(|| format!("{p}none"), |u| format!("{p}uid:{u}")));
        for code in codes {
            inv.key(format!(
                "{p}code:{}",
                hex::encode(self.hasher.hash(&new.site_key, code))
            ));
        }
        inv.arg(new.created_at)
            .arg(&new.id)
            .arg(new.expires_at)
            .arg(l.visitor_live)
            .arg(l.visitor_per_minute)
            .arg(l.address_live)
            .arg(l.address_per_minute)
            .arg(l.site_live)
            .arg(if address.is_some() { "1" } else { "0" })
            .arg(&record_ver)
            .arg(&merge_ver)
            .arg(
                serde_json::to_string(&StoredVisitor::from(&plan.record))
                    .map_err(|e| StoreError::Backend(Box::new(e)))?,
            )
            .arg(&vid_value)
            .arg(&uid_value)
            .arg(event_json(&status, new.created_at)?)
            .arg(RETAIN_MS)
            .arg(format!("{p}sess:"))
            .arg(&vid_index)
            .arg(&user_index)
            .arg(
                if plan.record.visitor_id.is_some() || plan.record.user_id.is_some() {
                    "1"
                } else {
                    "0"
                },
            )
            .arg(fields.len() * 2);
        for (k, v) in &fields {
            inv.arg(*k).arg(v);
        }
        let answer = array(inv.invoke_async(&mut self.conn()).await.map_err(err)?)?;
        let outcome = match answer.first().and_then(text).as_deref() {
            Some("ok") => {
                let index = answer.get(1).and_then(int).unwrap_or(0);
                let code = usize::try_from(index - 1)
                    .ok()
                    .and_then(|i| codes.get(i))
                    .ok_or_else(|| corrupt("create script chose no candidate"))?;
                CreateOutcome::Created {
                    code: code.clone(),
                    events: vec![SessionEvent {
                        session_id: new.id.clone(),
                        seq: 1,
                        status,
                        at: new.created_at,
                    }],
                    visitor: rid,
                    merged: answer.get(2).and_then(int).unwrap_or(0).unsigned_abs(),
                }
            }
            Some("taken") => CreateOutcome::CodeTaken,
            Some("limited") => {
                let scope = match answer.get(1).and_then(text).as_deref() {
                    Some("visitor_live") => CreateScope::VisitorLive,
                    Some("visitor_rate") => CreateScope::VisitorRate,
                    Some("address_live") => CreateScope::AddressLive,
                    Some("address_rate") => CreateScope::AddressRate,
                    _ => CreateScope::SiteLive,
                };
                let until_ms = answer.get(2).and_then(int).unwrap_or(0).unsigned_abs();
                CreateOutcome::Limited(CreateLimited { scope, until_ms })
            }
            Some("retry") => return Ok(None),
            _ => return Err(corrupt(format!("create script answered {answer:?}"))),
        };
        Ok(Some(outcome))
    }

    /// The sites with data.
    async fn sites(&self) -> Result<Vec<String>, StoreError> {
        redis::cmd("SMEMBERS")
            .arg(SITES_KEY)
            .query_async(&mut self.conn())
            .await
            .map_err(err)
    }

    async fn read_agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(agent_key(id))
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        if f.is_empty() {
            return Ok(None);
        }
        let bad = || corrupt(format!("agent {id} is incomplete"));
        Ok(Some(AgentRecord {
            id: id.to_owned(),
            site_key: f.get("site").cloned().ok_or_else(bad)?,
            name: f.get("name").cloned().ok_or_else(bad)?,
            created_at: f
                .get("created")
                .and_then(|c| c.parse().ok())
                .ok_or_else(bad)?,
            revoked_at: f.get("revoked").and_then(|r| r.parse().ok()),
        }))
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create_session(&self, new: NewSession) -> Result<CreateOutcome, StoreError> {
        // The pointers first, in the same round trip: if the session is
        // never written they point to nothing, and are dropped below.
        let ticket_ttl = new.ticket_expires_at.saturating_sub(new.created_at) + 60_000;
        let mut pointers = redis::pipe();
        pointers
            .cmd("SET")
            .arg(sid_key(&new.id))
            .arg(&new.site_key)
            .arg("PX")
            .arg(RETAIN_MS + (new.expires_at - new.created_at.min(new.expires_at)))
            .ignore()
            .cmd("SET")
            .arg(ticket_redis_key(&new.ticket_key))
            .arg(format!("{} {}", new.id, new.ticket_expires_at))
            .arg("PX")
            .arg(ticket_ttl)
            .ignore();
        // Every time, not once per replica: a Redis that lost its data
        // must still learn which sites the sweep looks at.
        pointers
            .cmd("SADD")
            .arg(SITES_KEY)
            .arg(&new.site_key)
            .ignore();
        let () = pointers.query_async(&mut self.conn()).await.map_err(err)?;
        // A few candidates first: each is a key the script is handed, and
        // in a code space that is not crowded the first is free. All of
        // them only if those are all taken.
        let mut codes = &new.codes[..new.codes.len().min(FIRST_CANDIDATES)];
        for _ in 0..MAX_RETRIES {
            let outcome = match self.try_create(&new, codes).await? {
                Some(CreateOutcome::CodeTaken) if codes.len() < new.codes.len() => {
                    codes = &new.codes;
                    continue;
                }
                outcome => outcome,
            };
            if let Some(outcome) = outcome {
                if matches!(outcome, CreateOutcome::Created { .. }) {
                    self.remember_site(&new.id, &new.site_key);
                } else {
                    let _: Result<(), _> = redis::cmd("DEL")
                        .arg(sid_key(&new.id))
                        .arg(ticket_redis_key(&new.ticket_key))
                        .query_async(&mut self.conn())
                        .await;
                }
                return Ok(outcome);
            }
        }
        Err(StoreError::Unavailable(
            "the visitor's record kept changing under this replica".into(),
        ))
    }

    async fn visitor(
        &self,
        session_id: &str,
        max_tickets: usize,
        now_ms: u64,
    ) -> Result<Option<VisitorHistory>, StoreError> {
        let Some(site) = self.site_of(session_id).await? else {
            return Ok(None);
        };
        let p = prefix(&site);
        let answer = array(
            self.scripts
                .history
                .key(format!("{p}sess:{session_id}"))
                .arg(&p)
                .arg(max_tickets.max(1))
                .arg(session_id)
                .invoke_async(&mut self.conn())
                .await
                .map_err(err)?,
        )?;
        let Some(first) = answer.first() else {
            return Ok(None);
        };
        let record = match text(first) {
            Some(json) => parse_visitor(&json)?,
            None => {
                return Err(corrupt(format!(
                    "session {session_id}'s visitor record is gone"
                )))
            }
        };
        let mut tickets = Vec::new();
        for row in answer.into_iter().skip(1).take(max_tickets) {
            let row = array(row)?;
            let s = |i: usize| row.get(i).and_then(text).unwrap_or_default();
            let n = |i: usize| s(i).parse::<u64>().ok();
            let state = SessionState::from_name(&s(2))
                .ok_or_else(|| corrupt(format!("session {} has no state", s(0))))?;
            let (state, end_reason) = lifecycle::as_of(
                state,
                EndReason::from_name(&s(3)),
                n(5).unwrap_or(0),
                n(6),
                now_ms,
            );
            let agent_name = s(4);
            tickets.push(Ticket {
                session_id: s(0),
                created_at: n(1).unwrap_or(0),
                state,
                end_reason,
                agent_name: (!agent_name.is_empty()).then_some(agent_name),
            });
        }
        Ok(Some(VisitorHistory { record, tickets }))
    }

    async fn session(&self, id: &str, now_ms: u64) -> Result<Option<SessionUpdate>, StoreError> {
        self.update(id, None, now_ms).await
    }

    async fn apply(
        &self,
        id: &str,
        change: Change,
        now_ms: u64,
    ) -> Result<Option<SessionUpdate>, StoreError> {
        self.update(id, Some(&change), now_ms).await
    }

    async fn find_live_code(
        &self,
        site_key: &str,
        code: &str,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let p = prefix(site_key);
        self.scripts
            .live_code
            .key(format!(
                "{p}code:{}",
                hex::encode(self.hasher.hash(site_key, code))
            ))
            .arg(format!("{p}sess:"))
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<Vec<SessionEvent>, StoreError> {
        let mut events = Vec::new();
        for site in self.sites().await? {
            let p = prefix(&site);
            // Codes that ran out (`live`) and prompts that did (`due`).
            let (expired, timed_out): (Vec<String>, Vec<String>) = redis::pipe()
                .cmd("ZRANGEBYSCORE")
                .arg(format!("{p}live"))
                .arg("-inf")
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(1000)
                .cmd("ZRANGEBYSCORE")
                .arg(format!("{p}due"))
                .arg("-inf")
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(1000)
                .query_async(&mut self.conn())
                .await
                .map_err(err)?;
            for id in expired.into_iter().chain(timed_out) {
                self.remember_site(&id, &site);
                match self.update(&id, None, now_ms).await? {
                    Some(update) => events.extend(update.events),
                    None => {
                        // Its record is gone (kept past its time): so are
                        // its entries.
                        let () = redis::pipe()
                            .cmd("ZREM")
                            .arg(format!("{p}live"))
                            .arg(&id)
                            .ignore()
                            .cmd("ZREM")
                            .arg(format!("{p}due"))
                            .arg(&id)
                            .ignore()
                            .query_async(&mut self.conn())
                            .await
                            .map_err(err)?;
                    }
                }
            }
        }
        // Tickets and failures expire by themselves (Redis TTL).
        Ok(events)
    }

    async fn events_after(&self, id: &str, after: u64) -> Result<Vec<SessionEvent>, StoreError> {
        let Some(site) = self.site_of(id).await? else {
            return Ok(Vec::new());
        };
        let start = i64::try_from(after).unwrap_or(i64::MAX);
        let list: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{}ev:{id}", prefix(&site)))
            .arg(start)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        list.iter()
            .enumerate()
            .map(|(i, json)| {
                let e: StoredEvent = serde_json::from_str(json)
                    .map_err(|e| corrupt(format!("event of session {id}: {e}")))?;
                Ok(SessionEvent {
                    session_id: id.to_owned(),
                    seq: after + 1 + i as u64,
                    status: e.status,
                    at: e.at,
                })
            })
            .collect()
    }

    async fn create_ticket(
        &self,
        session_id: &str,
        ticket_key: Digest32,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        // Only its expiry needs the broker's clock: the TTL is a day at
        // most, and the value says when it ends.
        let () = redis::cmd("SET")
            .arg(ticket_redis_key(&ticket_key))
            .arg(format!("{session_id} {expires_at}"))
            .arg("PX")
            .arg(u64::from(secrets::STREAM_TICKET_TTL_SECS) * 1000 + 60_000)
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn ticket_session(
        &self,
        ticket_key: Digest32,
        now_ms: u64,
    ) -> Result<Option<String>, StoreError> {
        let value: Option<String> = redis::cmd("GET")
            .arg(ticket_redis_key(&ticket_key))
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        Ok(value.and_then(|v| {
            let (id, expires) = v.split_once(' ')?;
            (expires.parse::<u64>().ok()? > now_ms).then(|| id.to_owned())
        }))
    }

    async fn add_agent(&self, agent: NewAgent) -> Result<(), StoreError> {
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(agent_key(&agent.id))
            .arg("site")
            .arg(&agent.site_key)
            .arg("name")
            .arg(&agent.name)
            .arg("tok")
            .arg(hex::encode(agent.token_hash))
            .arg("created")
            .arg(agent.created_at)
            .ignore()
            .cmd("SET")
            .arg(agent_token_key(&agent.token_hash))
            .arg(&agent.id)
            .ignore()
            .cmd("ZADD")
            .arg(AGENTS_ALL)
            .arg(agent.created_at)
            .arg(&agent.id)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn agents(&self, site_key: Option<&str>) -> Result<Vec<AgentRecord>, StoreError> {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(AGENTS_ALL)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(agent) = self.read_agent(&id).await? {
                if site_key.is_none_or(|s| s == agent.site_key) {
                    out.push(agent);
                }
            }
        }
        Ok(out)
    }

    async fn agent_by_token(
        &self,
        token_hash: Digest32,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let id: Option<String> = redis::cmd("GET")
            .arg(agent_token_key(&token_hash))
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
        match id {
            Some(id) => self.read_agent(&id).await,
            None => Ok(None),
        }
    }

    async fn revoke_agent(&self, id: &str, now_ms: u64) -> Result<RevokeOutcome, StoreError> {
        let answer: String = self
            .scripts
            .revoke
            .key(agent_key(id))
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)?;
        Ok(match answer.as_str() {
            "ok" => RevokeOutcome::Revoked,
            "already" => RevokeOutcome::AlreadyRevoked,
            _ => RevokeOutcome::NotFound,
        })
    }

    async fn begin_redeem(&self, attempt: RedeemAttempt) -> Result<RedeemStart, StoreError> {
        let p = prefix(&attempt.site_key);
        let mut inv = self.scripts.redeem.prepare_invoke();
        inv.key(format!("{p}f"))
            .key(format!("{p}f:{}", attempt.agent_id))
            .key(format!(
                "{p}code:{}",
                hex::encode(self.hasher.hash(&attempt.site_key, &attempt.code))
            ))
            .arg(attempt.now_ms)
            .arg(format!("{p}sess:"))
            .arg(limits::KEEP_FAILURES_MS);
        for (counted, n, since) in lock_queries(&attempt) {
            let window = attempt.now_ms - since;
            inv.arg(match counted {
                Counted::Agent => "a",
                Counted::Site => "s",
            })
            .arg(n)
            .arg(since)
            .arg(window);
        }
        let answer = array(inv.invoke_async(&mut self.conn()).await.map_err(err)?)?;
        match answer.first().and_then(text).as_deref() {
            Some("locked") => lock_from(&attempt, &answer[1..])
                .map(RedeemStart::Locked)
                .ok_or_else(|| corrupt("the redeem script saw a lock the policy does not")),
            Some("live") => Ok(RedeemStart::Live {
                session_id: answer
                    .get(1)
                    .and_then(text)
                    .ok_or_else(|| corrupt("the redeem script named no session"))?,
            }),
            Some("failed") => Ok(RedeemStart::Failed {
                lock_started: lock_from(&attempt, &answer[1..]),
            }),
            _ => Err(corrupt(format!("redeem script answered {answer:?}"))),
        }
    }

    async fn count_sessions(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for site in self.sites().await? {
            let n: Option<u64> = redis::cmd("GET")
                .arg(format!("{}n", prefix(&site)))
                .query_async(&mut self.conn())
                .await
                .map_err(err)?;
            total += n.unwrap_or(0);
        }
        Ok(total)
    }

    async fn count_live_codes(&self, site_key: &str, now_ms: u64) -> Result<u64, StoreError> {
        redis::cmd("ZCOUNT")
            .arg(format!("{}live", prefix(site_key)))
            .arg(format!("({now_ms}"))
            .arg("+inf")
            .query_async(&mut self.conn())
            .await
            .map_err(err)
    }
}
