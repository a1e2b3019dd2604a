//! The live mirror's state, in memory: for each active session with a
//! mirror socket, the visitor's latest page and the changes since, whether
//! the visitor's page is connected, and the channel to the agent's views.
//! The sockets themselves are in [`crate::routes::mirror`].
//!
//! Page content is never written to the store or the log. It stays here
//! until the session leaves `active` (each session's mirror follows the
//! hub, like an event stream) or the broker shuts down, and is dropped then.
//!
//! - [`check`]: the checks on every frame a visitor's page sends.
//! - [`bucket`]: the token buckets that limit how fast it may send.
//! - [`capture`]: `serve --mirror-capture`, every received frame to a file.

pub mod bucket;
pub mod capture;
pub mod check;
pub mod relay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use agent_assist_protocol::mirror::{View, CLOSE_NOT_ACTIVE};
use agent_assist_protocol::SessionState;
use axum::extract::ws::{close_code, Utf8Bytes};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot, watch};

use self::bucket::TokenBucket;
use self::check::Verdict;
use self::relay::{Relay, Relayed};
use crate::AppState;

/// Most bytes of changes kept after a page, for agents who join later.
/// Past it the broker forgets the page and its changes and asks the
/// visitor's page for a fresh one (`resync`), which is smaller than a long
/// history of changes.
pub const MAX_LOG_BYTES: usize = 2 << 20;

/// How many frames an agent's view may fall behind before it is closed
/// (code 1013; it reconnects and starts again from the snapshot). A little
/// more than the visitor's whole burst ([`FRAME_BURST`]).
pub const VIEWER_BUFFER: usize = 256;

/// Frames a visitor's page may send in a burst…
pub const FRAME_BURST: u64 = 240;
/// …and per second after it (two per animation frame at 60 Hz).
pub const FRAME_RATE: u64 = 120;
/// Bytes a visitor's page may send in a burst (two snapshots of the
/// largest size)…
pub const BYTE_BURST: u64 = 8 << 20;
/// …and per second after it.
pub const BYTE_RATE: u64 = 2 << 20;

/// Close code when the broker shuts down: "going away"; clients reconnect.
pub const CLOSE_GOING_AWAY: u16 = close_code::AWAY;

/// Every session's mirror.
#[derive(Debug, Default)]
pub struct Mirrors {
    // A std mutex: held for a map lookup, never across an await.
    sessions: Mutex<HashMap<String, Arc<SessionMirror>>>,
    /// Set when several replicas share the mirror (see [`relay`]).
    relay: OnceLock<Arc<Relay>>,
}

impl Mirrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions have a mirror in memory; for tests.
    pub fn count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Shares the mirrors with the other replicas through `relay`.
    pub fn set_relay(&self, relay: Arc<Relay>) {
        let _ = self.relay.set(relay);
    }

    /// The sessions whose visitor is not connected here.
    fn without_visitor(&self) -> Vec<String> {
        lock(&self.sessions)
            .iter()
            .filter(|(_, m)| lock(&m.inner).visitor.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A frame another replica relayed for `session_id`.
    fn relayed(&self, session_id: &str, frame: Relayed) {
        let mirror = lock(&self.sessions).get(session_id).cloned();
        if let Some(mirror) = mirror {
            mirror.apply_relayed(frame);
        }
    }

    fn remove(&self, session_id: &str, mirror: &Arc<SessionMirror>) {
        let mut sessions = lock(&self.sessions);
        // Only this mirror: a newer one may have taken its place.
        if sessions
            .get(session_id)
            .is_some_and(|m| Arc::ptr_eq(m, mirror))
        {
            sessions.remove(session_id);
        }
    }
}

/// The mirror of session `session_id` (which was `active` a moment ago),
/// made if there is none yet. A new mirror follows the session on the hub
/// and closes itself when the session leaves `active` or the broker shuts
/// down.
pub fn attach(state: &AppState, session_id: &str) -> Arc<SessionMirror> {
    let mut sessions = lock(&state.mirrors.sessions);
    if let Some(mirror) = sessions.get(session_id) {
        return Arc::clone(mirror);
    }
    let mut mirror = SessionMirror::new(session_id);
    mirror.relay = state.mirrors.relay.get().cloned();
    let mirror = Arc::new(mirror);
    if let Some(relay) = &mirror.relay {
        // Whichever replica the visitor is on answers with its copy.
        relay.send(session_id, &Relayed::Hello);
    }
    sessions.insert(session_id.to_owned(), Arc::clone(&mirror));
    tokio::spawn(follow(state.clone(), Arc::clone(&mirror)));
    mirror
}

/// Closes `mirror` when its session leaves `active` (code
/// [`CLOSE_NOT_ACTIVE`]) or the broker shuts down ([`CLOSE_GOING_AWAY`]).
async fn follow(state: AppState, mirror: Arc<SessionMirror>) {
    let id = mirror.session_id.clone();
    let closed = state.closed();
    tokio::pin!(closed);
    // Subscribe before reading the session: an end committed in between is
    // then on the channel.
    let mut events = state.hub.subscribe(&id);
    let mut check = true;
    let code = loop {
        if check {
            check = false;
            match state.session(&id).await {
                Ok(Some(s)) if s.state == SessionState::Active => {}
                Ok(_) => break CLOSE_NOT_ACTIVE,
                // The hub still says when it ends.
                Err(e) => {
                    tracing::error!(
                        error = %e, session_id = %id,
                        "reading a mirrored session failed"
                    );
                }
            }
        }
        tokio::select! {
            () = &mut closed => break CLOSE_GOING_AWAY,
            received = events.recv() => match received {
                // `active` only ever moves on to `ended`; earlier states
                // published late are old news.
                Ok(event) if event.status.state == SessionState::Ended => break CLOSE_NOT_ACTIVE,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => check = true,
                Err(RecvError::Closed) => {
                    events = state.hub.subscribe(&id);
                    check = true;
                }
            },
        }
    };
    state.mirrors.remove(&id, &mirror);
    mirror.close(code);
    if code == CLOSE_NOT_ACTIVE {
        tracing::info!(session_id = %id, "mirror closed: the session is not active");
    }
}

/// One session's mirror.
#[derive(Debug)]
pub struct SessionMirror {
    session_id: String,
    // A std mutex, never held across an await. The snapshot is updated and
    // the frame sent to the views under it, and a view subscribes and
    // copies the snapshot under it, so a view that joins gets every frame
    // exactly once: in the snapshot or from the channel.
    inner: Mutex<Inner>,
    /// Once set, the close code for every socket of the session.
    closing: watch::Sender<Option<u16>>,
    /// The other replicas, when there are some.
    relay: Option<Arc<Relay>>,
}

#[derive(Debug)]
struct Inner {
    /// The latest page (or `hidden`) as sent to the views.
    page: Option<Utf8Bytes>,
    /// The changes since `page`, as sent to the views.
    ops: Vec<Utf8Bytes>,
    ops_bytes: usize,
    /// Set when the changes overflowed: nothing is kept until the next page.
    awaiting_page: bool,
    /// The visitor's current connection, if any.
    visitor: Option<VisitorSlot>,
    /// The visitor is connected to another replica (as it relayed).
    remote_online: bool,
    next_connection: u64,
    /// The visitor's rate limits. They belong to the session, not to one
    /// connection, so reconnecting does not refill them.
    frames: TokenBucket,
    bytes: TokenBucket,
    views: broadcast::Sender<Utf8Bytes>,
}

#[derive(Debug)]
struct VisitorSlot {
    connection: u64,
    /// Told when a newer connection takes this one's place.
    replaced: oneshot::Sender<()>,
}

/// What became of a visitor's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Kept and sent to the views as needed.
    Done,
    /// Sent, but the changes kept since the page grew too large and were
    /// dropped with it: ask the visitor's page for a fresh one.
    Resync,
    /// Nothing done: a newer connection has replaced this one.
    Replaced,
}

impl SessionMirror {
    fn new(session_id: &str) -> Self {
        let now = Instant::now();
        Self {
            session_id: session_id.to_owned(),
            inner: Mutex::new(Inner {
                page: None,
                ops: Vec::new(),
                ops_bytes: 0,
                awaiting_page: false,
                visitor: None,
                remote_online: false,
                next_connection: 0,
                frames: TokenBucket::new(FRAME_BURST, FRAME_RATE, now),
                bytes: TokenBucket::new(BYTE_BURST, BYTE_RATE, now),
                views: broadcast::channel(VIEWER_BUFFER).0,
            }),
            closing: watch::channel(None).0,
            relay: None,
        }
    }

    fn relay(&self, frame: &Relayed) {
        if let Some(relay) = &self.relay {
            relay.send(&self.session_id, frame);
        }
    }

    /// Applies a frame another replica relayed: its copy while the visitor
    /// is connected there, or a hello from a replica that wants this one's.
    fn apply_relayed(&self, frame: Relayed) {
        let mut inner = lock(&self.inner);
        if inner.visitor.is_some() {
            // The visitor is here: this copy is the one that counts.
            if frame == Relayed::Hello {
                self.relay(&Relayed::Presence(true));
                self.relay(&Relayed::Reset);
                if let Some(page) = &inner.page {
                    self.relay(&Relayed::Page(page.clone()));
                }
                for ops in &inner.ops {
                    self.relay(&Relayed::Ops(ops.clone()));
                }
            }
            return;
        }
        match frame {
            Relayed::Hello => {}
            Relayed::Reset => inner.clear(),
            Relayed::Page(text) => inner.keep_page(text),
            Relayed::Ops(text) => {
                inner.keep_ops(text);
            }
            Relayed::Presence(online) => {
                if inner.remote_online != online {
                    inner.remote_online = online;
                    inner.send(presence(online));
                }
            }
        }
    }

    /// Completes with the close code once the session's sockets must close.
    pub fn closing(&self) -> impl std::future::Future<Output = u16> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(code) => code.unwrap_or(CLOSE_NOT_ACTIVE),
                // The sender went with the mirror, which only happens once
                // it is closed.
                Err(_) => CLOSE_NOT_ACTIVE,
            }
        }
    }

    /// Tells every socket of the session to close with `code`, and drops
    /// the page and its changes.
    fn close(&self, code: u16) {
        lock(&self.inner).clear();
        self.closing.send_replace(Some(code));
    }

    /// Makes a new visitor connection the current one, replacing (and
    /// closing) any other.
    pub fn connect_visitor(self: &Arc<Self>) -> VisitorConnection {
        let mut inner = lock(&self.inner);
        inner.next_connection += 1;
        let connection = inner.next_connection;
        let (tx, rx) = oneshot::channel();
        let previous = inner.visitor.replace(VisitorSlot {
            connection,
            replaced: tx,
        });
        match previous {
            Some(old) => {
                // An error only means the old connection has already gone.
                let _ = old.replaced.send(());
            }
            None => {
                if !inner.remote_online {
                    inner.send(presence(true));
                }
                inner.remote_online = false;
                self.relay(&Relayed::Presence(true));
            }
        }
        VisitorConnection {
            mirror: Arc::clone(self),
            connection,
            replaced: Some(rx),
        }
    }

    /// A new agent's view: what to send first (presence, the page, the
    /// changes since), and the channel of everything after.
    pub fn subscribe(&self) -> (Vec<Utf8Bytes>, broadcast::Receiver<Utf8Bytes>) {
        let inner = lock(&self.inner);
        let rx = inner.views.subscribe();
        let mut first = Vec::with_capacity(2 + inner.ops.len());
        first.push(presence(inner.visitor.is_some() || inner.remote_online));
        first.extend(inner.page.iter().cloned());
        first.extend(inner.ops.iter().cloned());
        (first, rx)
    }
}

impl Inner {
    /// Sends to every view.
    fn send(&self, frame: Utf8Bytes) {
        // An error only means no view is open.
        let _ = self.views.send(frame);
    }

    /// Forgets the page and its changes.
    fn clear(&mut self) {
        self.page = None;
        self.ops = Vec::new();
        self.ops_bytes = 0;
    }

    /// A new page: replaces the old one and its changes, and goes to the views.
    fn keep_page(&mut self, text: Utf8Bytes) {
        self.clear();
        self.page = Some(text.clone());
        self.awaiting_page = false;
        self.send(text);
    }

    /// Changes: kept after the page (unless they overflow it) and sent to
    /// the views.
    fn keep_ops(&mut self, text: Utf8Bytes) -> Published {
        let mut published = Published::Done;
        if !self.awaiting_page && self.page.is_some() {
            if self.ops_bytes + text.len() > MAX_LOG_BYTES {
                // Views already open carry on with the changes; a view
                // that joins now waits for the fresh page.
                self.clear();
                self.awaiting_page = true;
                published = Published::Resync;
            } else {
                self.ops_bytes += text.len();
                self.ops.push(text.clone());
            }
        }
        self.send(text);
        published
    }
}

/// A visitor's connection while it is the current one; dropping it marks
/// the visitor as gone (unless a newer connection has taken its place).
#[derive(Debug)]
pub struct VisitorConnection {
    mirror: Arc<SessionMirror>,
    connection: u64,
    replaced: Option<oneshot::Receiver<()>>,
}

impl VisitorConnection {
    /// Completes when a newer connection has replaced this one (only once).
    pub async fn replaced(&mut self) {
        if let Some(rx) = self.replaced.as_mut() {
            let replaced = rx.await.is_ok();
            self.replaced = None;
            if replaced {
                return;
            }
        }
        // Already told, or the slot was let go of without a replacement.
        std::future::pending::<()>().await;
    }

    /// Takes one frame of `bytes` from the session's rate limits; false
    /// when the visitor sends too fast.
    pub fn admit(&self, bytes: usize) -> bool {
        let now = Instant::now();
        let mut inner = lock(&self.mirror.inner);
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        inner.frames.take(1, now) && inner.bytes.take(bytes, now)
    }

    /// Keeps and sends a checked frame.
    pub fn publish(&self, verdict: Verdict) -> Published {
        let mut inner = lock(&self.mirror.inner);
        if inner.visitor.as_ref().map(|v| v.connection) != Some(self.connection) {
            return Published::Replaced;
        }
        match verdict {
            Verdict::Drop => Published::Done,
            Verdict::Page(text) => {
                let text = Utf8Bytes::from(text);
                self.mirror.relay(&Relayed::Page(text.clone()));
                inner.keep_page(text);
                Published::Done
            }
            Verdict::Ops(text) => {
                let text = Utf8Bytes::from(text);
                self.mirror.relay(&Relayed::Ops(text.clone()));
                inner.keep_ops(text)
            }
        }
    }
}

impl Drop for VisitorConnection {
    fn drop(&mut self) {
        let mut inner = lock(&self.mirror.inner);
        if inner.visitor.as_ref().map(|v| v.connection) == Some(self.connection) {
            inner.visitor = None;
            // When the whole mirror closes, the views are told that instead.
            if self.mirror.closing.borrow().is_none() {
                inner.send(presence(false));
                self.mirror.relay(&Relayed::Presence(false));
            }
        }
    }
}

/// `{"t":"presence","online":…}`.
fn presence(online: bool) -> Utf8Bytes {
    // Plain data: writing it out cannot fail.
    Utf8Bytes::from(serde_json::to_string(&View::Presence { online }).unwrap_or_default())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[Utf8Bytes]) -> Vec<&str> {
        frames.iter().map(Utf8Bytes::as_str).collect()
    }

    const ONLINE: &str = r#"{"t":"presence","online":true}"#;
    const OFFLINE: &str = r#"{"t":"presence","online":false}"#;

    #[tokio::test]
    async fn views_get_the_snapshot_then_everything_new_exactly_once() {
        let mirror = Arc::new(SessionMirror::new("s"));
        let (first, _) = mirror.subscribe();
        assert_eq!(texts(&first), vec![OFFLINE]);

        let visitor = mirror.connect_visitor();
        assert_eq!(visitor.publish(Verdict::Page("P".into())), Published::Done);
        assert_eq!(visitor.publish(Verdict::Ops("A".into())), Published::Done);
        let (first, mut rx) = mirror.subscribe();
        assert_eq!(texts(&first), vec![ONLINE, "P", "A"]);
        visitor.publish(Verdict::Ops("B".into()));
        visitor.publish(Verdict::Drop);
        drop(visitor);
        assert_eq!(rx.recv().await.unwrap().as_str(), "B");
        assert_eq!(rx.recv().await.unwrap().as_str(), OFFLINE);
        // A new page replaces the old one and its changes.
        let visitor = mirror.connect_visitor();
        visitor.publish(Verdict::Page("Q".into()));
        let (first, _) = mirror.subscribe();
        assert_eq!(texts(&first), vec![ONLINE, "Q"]);
    }

    #[tokio::test]
    async fn a_newer_visitor_connection_replaces_the_older() {
        let mirror = Arc::new(SessionMirror::new("s"));
        let (_, mut rx) = mirror.subscribe();
        let mut old = mirror.connect_visitor();
        let new = mirror.connect_visitor();
        old.replaced().await;
        // The old one's frames go nowhere, and its end is not the visitor's.
        assert_eq!(
            old.publish(Verdict::Page("old".into())),
            Published::Replaced
        );
        drop(old);
        new.publish(Verdict::Page("new".into()));
        assert_eq!(rx.recv().await.unwrap().as_str(), ONLINE);
        assert_eq!(rx.recv().await.unwrap().as_str(), "new");
        drop(new);
        assert_eq!(rx.recv().await.unwrap().as_str(), OFFLINE);
    }

    #[tokio::test]
    async fn too_many_changes_drop_the_snapshot_and_ask_for_a_new_page() {
        let mirror = Arc::new(SessionMirror::new("s"));
        let visitor = mirror.connect_visitor();
        visitor.publish(Verdict::Page("P".into()));
        let chunk = "x".repeat(MAX_LOG_BYTES / 2);
        assert_eq!(
            visitor.publish(Verdict::Ops(chunk.clone())),
            Published::Done
        );
        assert_eq!(
            visitor.publish(Verdict::Ops(chunk.clone())),
            Published::Done
        );
        let (_, mut rx) = mirror.subscribe();
        assert_eq!(visitor.publish(Verdict::Ops("y".into())), Published::Resync);
        // The view that was open still gets the change; a new one gets
        // nothing until the next page, and nothing more is kept until then.
        assert_eq!(rx.recv().await.unwrap().as_str(), "y");
        assert_eq!(visitor.publish(Verdict::Ops("z".into())), Published::Done);
        let (first, _) = mirror.subscribe();
        assert_eq!(texts(&first), vec![ONLINE]);
        visitor.publish(Verdict::Page("P2".into()));
        visitor.publish(Verdict::Ops("a".into()));
        let (first, _) = mirror.subscribe();
        assert_eq!(texts(&first), vec![ONLINE, "P2", "a"]);
    }

    #[tokio::test]
    async fn the_rate_limits_hold_across_connections() {
        let mirror = Arc::new(SessionMirror::new("s"));
        let visitor = mirror.connect_visitor();
        // Without a pause, a burst and a little refill at most.
        let admitted = (0..FRAME_BURST * 2)
            .take_while(|_| visitor.admit(10))
            .count() as u64;
        assert!((FRAME_BURST..FRAME_BURST * 2).contains(&admitted));
        drop(visitor);
        // A new connection does not start with a new burst.
        let again = mirror.connect_visitor();
        let admitted = (0..FRAME_BURST).take_while(|_| again.admit(10)).count() as u64;
        assert!(admitted < FRAME_BURST);
        let big = Arc::new(SessionMirror::new("t")).connect_visitor();
        assert!(big.admit(4 << 20));
        assert!(big.admit(4 << 20));
        assert!(!big.admit(4 << 20));
    }

    #[tokio::test]
    async fn closing_reaches_every_socket_and_drops_the_page() {
        let mirror = Arc::new(SessionMirror::new("s"));
        let visitor = mirror.connect_visitor();
        visitor.publish(Verdict::Page("P".into()));
        let before = mirror.closing();
        mirror.close(CLOSE_NOT_ACTIVE);
        let after = mirror.closing();
        assert_eq!(before.await, CLOSE_NOT_ACTIVE);
        assert_eq!(after.await, CLOSE_NOT_ACTIVE);
        let (first, _) = mirror.subscribe();
        assert_eq!(texts(&first), vec![ONLINE]);
    }
}
