//! Where committed session events are announced to the open event streams.
//!
//! The store is the record (every event is a row, so a stream that
//! reconnects can replay what it missed); the hub only wakes the streams
//! that are open right now. [`Hub`] is the small interface the broker uses,
//! so that several broker replicas can later share events over Redis
//! pub/sub; [`LocalHub`] serves one process with a `tokio::sync::broadcast`
//! channel per followed session.
//!
//! A hub may drop or reorder events (a slow stream lags, two transitions
//! publish in the other order than they committed): streams notice a gap in
//! `seq` and read the missing events from the store.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use agent_assist_protocol::SessionState;
use tokio::sync::broadcast;

use crate::store::SessionEvent;

/// How many events a stream may fall behind before it lags and catches up
/// from the store. A session has at most four events, so this is plenty.
const CHANNEL_CAPACITY: usize = 16;

/// Announces committed events to whoever follows the session.
pub trait Hub: Send + Sync + Debug + 'static {
    /// Announces `event` (already committed to the store).
    fn publish(&self, event: &SessionEvent);

    /// Follows a session's events from now on.
    fn subscribe(&self, session_id: &str) -> broadcast::Receiver<SessionEvent>;

    /// Forgets sessions nobody follows any more.
    fn prune(&self);
}

/// The in-process [`Hub`].
#[derive(Debug, Default)]
pub struct LocalHub {
    // A std mutex: it is held only for a map lookup, never across an await.
    channels: Mutex<HashMap<String, broadcast::Sender<SessionEvent>>>,
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of sessions with a channel; for tests.
    pub fn channel_count(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Hub for LocalHub {
    fn publish(&self, event: &SessionEvent) {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = channels.get(&event.session_id) else {
            // Nobody follows this session.
            return;
        };
        // An error only means every receiver has gone.
        let _ = sender.send(event.clone());
        // After `ended` nothing more will be published for the session, and
        // receivers still get what was sent before the sender is dropped.
        if event.status.state == SessionState::Ended || sender.receiver_count() == 0 {
            channels.remove(&event.session_id);
        }
    }

    fn subscribe(&self, session_id: &str) -> broadcast::Receiver<SessionEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels
            .entry(session_id.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    fn prune(&self) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, sender| sender.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_assist_protocol::{EndReason, SessionStatus};

    fn event(id: &str, seq: u64, state: SessionState) -> SessionEvent {
        SessionEvent {
            session_id: id.into(),
            seq,
            status: SessionStatus {
                session_id: id.into(),
                state,
                end_reason: (state == SessionState::Ended).then_some(EndReason::AgentEnded),
                expires_at: 0,
                agent: None,
                consent_expires_at: None,
            },
            at: 0,
        }
    }

    #[tokio::test]
    async fn subscribers_get_their_sessions_events_only() {
        let hub = LocalHub::new();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.publish(&event("a", 2, SessionState::Authorizing));
        hub.publish(&event("b", 2, SessionState::Authorizing));
        hub.publish(&event("a", 3, SessionState::Ended));
        assert_eq!(a.recv().await.unwrap().seq, 2);
        assert_eq!(a.recv().await.unwrap().seq, 3);
        assert_eq!(b.recv().await.unwrap().session_id, "b");
        // The ended session's channel is gone; the other stays while followed.
        assert!(a.recv().await.is_err());
        assert_eq!(hub.channel_count(), 1);
        drop(b);
        hub.prune();
        assert_eq!(hub.channel_count(), 0);
    }

    #[test]
    fn publishing_to_nobody_keeps_nothing() {
        let hub = LocalHub::new();
        hub.publish(&event("x", 1, SessionState::Pending));
        assert_eq!(hub.channel_count(), 0);
    }
}
