//! Where committed session events are announced to the open event streams.
//!
//! The store is the record (every event is a row, so a stream that
//! reconnects can replay what it missed); the hub only wakes the streams
//! that are open right now. [`Hub`] is the small interface the broker uses;
//! [`LocalHub`] serves one process with a `tokio::sync::broadcast` channel
//! per followed session, and [`RedisHub`] adds Redis pub/sub to it, so that
//! a stream open on one replica wakes for what an agent did on another.
//!
//! A hub may drop or reorder events (a slow stream lags, two transitions
//! publish in the other order than they committed): streams notice a gap in
//! `seq` and read the missing events from the store.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agent_assist_protocol::SessionState;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::broadcast;

use crate::store::{SessionEvent, Store, StoreError};

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

impl LocalHub {
    /// The sessions someone follows here.
    fn followed(&self) -> Vec<String> {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}

/// The channel every replica publishes its committed events on.
const CHANNEL: &str = "aa:events";

/// [`LocalHub`] plus Redis pub/sub: each event committed here is published
/// to the other replicas, and each one they publish is announced here. A
/// message lost while the subscription was down is made up for when it is
/// back: every followed session's latest event is read from the store and
/// announced, and a stream that sees it ahead reads what it missed.
pub struct RedisHub {
    local: Arc<LocalHub>,
    conn: redis::aio::ConnectionManager,
    /// This replica's id, so that it skips its own messages.
    replica: String,
}

impl Debug for RedisHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisHub")
    }
}

impl RedisHub {
    /// Connects to the Redis at `url` (as [`RedisStore`] does) and starts
    /// following the other replicas' events.
    pub async fn start(url: &str, store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Backend(format!("the Redis address is not valid: {e}").into())
        })?;
        let conn = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let local = Arc::new(LocalHub::new());
        let hub = Arc::new(RedisHub {
            local: Arc::clone(&local),
            conn,
            replica: crate::secrets::new_session_id(),
        });
        tokio::spawn(follow(
            client,
            Arc::downgrade(&local),
            hub.replica.clone(),
            store,
        ));
        Ok(hub)
    }
}

impl Hub for RedisHub {
    fn publish(&self, event: &SessionEvent) {
        self.local.publish(event);
        if event.seq == 1 {
            // A session's first event is committed before anyone can know
            // the session: a stream opened since, on any replica, read it
            // from the store.
            return;
        }
        let message = json!({
            "r": self.replica,
            "id": event.session_id,
            "seq": event.seq,
            "at": event.at,
            "status": event.status,
        })
        .to_string();
        let mut conn = self.conn.clone();
        // Not awaited: the event is committed, and a replica that misses
        // this message finds the event in the store (see the type's docs).
        tokio::spawn(async move {
            let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(message)
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, "could not publish an event to the other replicas");
            }
        });
    }

    fn subscribe(&self, session_id: &str) -> broadcast::Receiver<SessionEvent> {
        self.local.subscribe(session_id)
    }

    fn prune(&self) {
        self.local.prune();
    }
}

/// The subscription: announces the other replicas' events on `local` until
/// the hub is gone, reconnecting after Redis comes back.
async fn follow(
    client: redis::Client,
    local: std::sync::Weak<LocalHub>,
    replica: String,
    store: Arc<dyn Store>,
) {
    let mut first = true;
    loop {
        if local.strong_count() == 0 {
            return;
        }
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANNEL).await?;
            redis::RedisResult::Ok(pubsub)
        }
        .await;
        let mut pubsub = match subscribed {
            Ok(pubsub) => pubsub,
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to the other replicas' events yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if !first {
            catch_up(&local, store.as_ref()).await;
        }
        first = false;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Some(hub) = local.upgrade() else { return };
            let Ok(text) = message.get_payload::<String>() else {
                continue;
            };
            match parse_message(&text) {
                Some((from, event)) if from != replica => hub.publish(&event),
                Some(_) => {}
                None => tracing::warn!("unreadable message on {CHANNEL}"),
            }
        }
        tracing::warn!("lost the subscription to the other replicas' events; reconnecting");
    }
}

/// Announces each followed session's latest event from the store.
async fn catch_up(local: &std::sync::Weak<LocalHub>, store: &dyn Store) {
    let Some(hub) = local.upgrade() else { return };
    for id in hub.followed() {
        if let Ok(events) = store.events_after(&id, 0).await {
            if let Some(last) = events.last() {
                hub.publish(last);
            }
        }
    }
}

fn parse_message(text: &str) -> Option<(String, SessionEvent)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some((
        v["r"].as_str()?.to_owned(),
        SessionEvent {
            session_id: v["id"].as_str()?.to_owned(),
            seq: v["seq"].as_u64()?,
            at: v["at"].as_u64()?,
            status: serde_json::from_value(v["status"].clone()).ok()?,
        },
    ))
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
