//! The live mirror across broker replicas, over Redis pub/sub.
//!
//! The visitor's page is connected to one replica (the origin); an agent's
//! view may be connected to another. Each replica with a mirror of a
//! session keeps its own copy (presence, page, changes since) for the views
//! connected to it. The origin publishes every frame it keeps on the
//! session's channel, `aa:mirror:<session id>`; the others apply them to
//! their copy and send them on to their views. A replica whose mirror is
//! new (an agent's view arrived first there) says hello on the channel,
//! and the origin answers with its whole copy, in order with what follows.
//!
//! Page content still never reaches the store: pub/sub messages are not
//! kept by Redis.
//!
//! A message is one kind byte, the sending replica's id (32 hex), then the
//! payload: `P` a page, `O` changes, `V` presence (`1`/`0`), `R` the start
//! of a whole copy, `H` hello (no payload).

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Mirrors;
use crate::store::StoreError;

const PREFIX: &str = "aa:mirror:";
const ID_LEN: usize = 32;

/// A frame as relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    Page(Utf8Bytes),
    Ops(Utf8Bytes),
    Presence(bool),
    Reset,
    Hello,
}

/// This replica's end of the relay.
#[derive(Debug)]
pub struct Relay {
    replica: String,
    // One queue, sent in order on one connection: a whole copy and the
    // frames after it arrive in that order.
    queue: mpsc::UnboundedSender<(String, Vec<u8>)>,
}

impl Relay {
    /// Connects to the Redis at `url` and starts relaying for `mirrors`.
    pub async fn start(url: &str, mirrors: &Arc<Mirrors>) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Backend(format!("the Redis address is not valid: {e}").into())
        })?;
        let conn = redis::aio::ConnectionManager::new(client.clone())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let (queue, rx) = mpsc::unbounded_channel();
        let relay = Arc::new(Relay {
            replica: crate::secrets::new_session_id(),
            queue,
        });
        tokio::spawn(publish(conn, rx));
        tokio::spawn(receive(
            client,
            Arc::downgrade(mirrors),
            relay.replica.clone(),
            Arc::downgrade(&relay),
        ));
        Ok(relay)
    }

    /// Publishes `frame` of session `session_id` to the other replicas.
    pub fn send(&self, session_id: &str, frame: &Relayed) {
        let (kind, payload): (u8, &[u8]) = match frame {
            Relayed::Page(t) => (b'P', t.as_bytes()),
            Relayed::Ops(t) => (b'O', t.as_bytes()),
            Relayed::Presence(true) => (b'V', b"1"),
            Relayed::Presence(false) => (b'V', b"0"),
            Relayed::Reset => (b'R', b""),
            Relayed::Hello => (b'H', b""),
        };
        let mut message = Vec::with_capacity(1 + ID_LEN + payload.len());
        message.push(kind);
        message.extend_from_slice(self.replica.as_bytes());
        message.extend_from_slice(payload);
        // An error only means the publisher has stopped (shutting down).
        let _ = self.queue.send((format!("{PREFIX}{session_id}"), message));
    }
}

/// Sends what is queued, in order, batching what is waiting.
async fn publish(
    mut conn: redis::aio::ConnectionManager,
    mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut pipe = redis::pipe();
        let mut next = Some(first);
        let mut count = 0;
        while let Some((channel, message)) = next {
            pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
            count += 1;
            next = if count < 256 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        let sent: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(e) = sent {
            // Lost frames: the views on other replicas catch up with the
            // next page (the visitor's page sends one on every reconnect).
            tracing::debug!(error = %e, "could not relay mirror frames");
        }
    }
}

/// Applies the other replicas' frames to this replica's mirrors until the
/// mirrors are gone, reconnecting after Redis comes back.
async fn receive(
    client: redis::Client,
    mirrors: Weak<Mirrors>,
    replica: String,
    relay: Weak<Relay>,
) {
    loop {
        if mirrors.strong_count() == 0 {
            return;
        }
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{PREFIX}*")).await?;
            redis::RedisResult::Ok(pubsub)
        }
        .await;
        let mut pubsub = match subscribed {
            Ok(pubsub) => pubsub,
            Err(e) => {
                tracing::debug!(error = %e, "cannot subscribe to relayed mirror frames yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        // Whatever was missed meanwhile: every copy asks again.
        if let (Some(m), Some(r)) = (mirrors.upgrade(), relay.upgrade()) {
            for id in m.without_visitor() {
                r.send(&id, &Relayed::Hello);
            }
        }
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Some(m) = mirrors.upgrade() else { return };
            let Some(session_id) = message.get_channel_name().strip_prefix(PREFIX) else {
                continue;
            };
            let bytes = message.get_payload_bytes();
            if bytes.len() < 1 + ID_LEN || &bytes[1..=ID_LEN] == replica.as_bytes() {
                continue;
            }
            let payload = &bytes[1 + ID_LEN..];
            let text = || std::str::from_utf8(payload).ok().map(Utf8Bytes::from);
            let frame = match bytes[0] {
                b'P' => text().map(Relayed::Page),
                b'O' => text().map(Relayed::Ops),
                b'V' => Some(Relayed::Presence(payload == b"1")),
                b'R' => Some(Relayed::Reset),
                b'H' => Some(Relayed::Hello),
                _ => None,
            };
            if let Some(frame) = frame {
                m.relayed(session_id, frame);
            }
        }
        tracing::warn!("lost the subscription to relayed mirror frames; reconnecting");
    }
}
