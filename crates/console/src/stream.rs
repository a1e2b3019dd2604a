//! The session's live state: an `EventSource` on
//! `/v1/sessions/{id}/events?ticket=…`, each `session` event a
//! [`SessionStatus`].
//!
//! `EventSource` cannot send an `Authorization` header, so the stream is
//! opened with a short-lived ticket. The browser reconnects by itself after
//! a dropped connection (sending `Last-Event-ID`); when it gives up (the
//! source is `CLOSED`, e.g. because the ticket expired) the stream asks the
//! broker for a new ticket with the agent's credential and reconnects from
//! the last event it saw, with a growing pause between failed attempts.
//! The source is closed when the session ends or the stream is dropped.

use crate::error::Error;
use agent_assist_protocol::{SessionState, SessionStatus, StreamTicket, SESSION_EVENT};
use agent_assist_web::dom::Listener;
use agent_assist_web::http::Http;
use agent_assist_web::js_de::from_js;
use gloo_timers::callback::Timeout;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use web_sys::{Event, EventSource, MessageEvent};

/// What the stream tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Status(SessionStatus),
    /// Whether events are flowing (`false` while reconnecting).
    Live(bool),
    /// The broker refused the agent's credential when asked for a ticket.
    CredentialRefused,
}

/// Longest pause between two reconnection attempts.
const MAX_BACKOFF_MS: u32 = 30_000;

/// The stream's URL: with the ticket, and with the last event seen so the
/// broker replays what came after it.
pub fn events_url(base: &str, session_id: &str, ticket: &str, last_id: Option<&str>) -> String {
    let mut url = [
        base,
        "/v1/sessions/",
        &encode(session_id),
        "/events?ticket=",
        &encode(ticket),
    ]
    .concat();
    if let Some(id) = last_id {
        url.push_str("&last_event_id=");
        url.push_str(&encode(id));
    }
    url
}

/// The pause before reconnection attempt `attempt` (0 for the first):
/// none, then 2 s, 4 s, … up to [`MAX_BACKOFF_MS`].
pub fn backoff_ms(attempt: u32) -> u32 {
    if attempt == 0 {
        0
    } else {
        1000u32
            .saturating_mul(1 << attempt.min(5))
            .min(MAX_BACKOFF_MS)
    }
}

/// Percent-encodes a URL component. The ids and tickets the broker makes
/// are URL-safe already; this keeps a surprising one from breaking the URL.
pub fn encode(part: &str) -> String {
    if part
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
    {
        return part.to_owned();
    }
    let mut out = String::with_capacity(part.len() * 3);
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

pub struct SessionStream {
    inner: Rc<Inner>,
}

struct Inner {
    http: Http,
    token: String,
    session_id: String,
    on_event: Rc<dyn Fn(StreamEvent)>,
    /// The `id:` of the last event received, to resume from.
    last_id: RefCell<Option<String>>,
    source: RefCell<Option<Source>>,
    retry: RefCell<Option<Timeout>>,
    /// Reconnections since events last flowed; sets the pause before the next.
    attempts: Cell<u32>,
    closed: Cell<bool>,
}

/// One `EventSource` and its listeners; closed when dropped.
struct Source {
    source: EventSource,
    _listeners: [Listener; 3],
}

impl Drop for Source {
    fn drop(&mut self) {
        self.source.close();
    }
}

impl SessionStream {
    /// Opens the stream of session `session_id` with `ticket`; `token` is
    /// the agent credential used to get new tickets.
    pub fn open(
        http: Http,
        token: String,
        session_id: String,
        ticket: &str,
        on_event: Rc<dyn Fn(StreamEvent)>,
    ) -> SessionStream {
        let inner = Rc::new(Inner {
            http,
            token,
            session_id,
            on_event,
            last_id: RefCell::new(None),
            source: RefCell::new(None),
            retry: RefCell::new(None),
            attempts: Cell::new(0),
            closed: Cell::new(false),
        });
        Inner::connect(&inner, ticket);
        SessionStream { inner }
    }

    /// Stops following the session (also done on drop).
    pub fn close(&self) {
        self.inner.close();
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        self.closed.set(true);
        self.retry.borrow_mut().take();
        // Dropping the source closes it; this may run inside one of its own
        // listeners, which wasm-bindgen allows (the closure is freed after
        // the call returns).
        let source = self.source.borrow_mut().take();
        drop(source);
    }

    fn connect(this: &Rc<Inner>, ticket: &str) {
        if this.closed.get() {
            return;
        }
        let url = events_url(
            this.http.base(),
            &this.session_id,
            ticket,
            this.last_id.borrow().as_deref(),
        );
        let source = match EventSource::new(&url) {
            Ok(source) => source,
            // Only a malformed URL throws, and ours is built from encoded
            // parts; try again later rather than give up on the session.
            Err(_) => return Inner::retry_later(this),
        };
        let weak = Rc::downgrade(this);
        let on_session = {
            let weak = weak.clone();
            move |e: Event| {
                if let (Some(inner), Some(msg)) = (weak.upgrade(), e.dyn_ref::<MessageEvent>()) {
                    inner.on_message(msg);
                }
            }
        };
        let on_open = {
            let weak = weak.clone();
            move |_: Event| {
                if let Some(inner) = weak.upgrade() {
                    inner.attempts.set(0);
                    (inner.on_event)(StreamEvent::Live(true));
                }
            }
        };
        let on_error = move |_: Event| {
            if let Some(inner) = weak.upgrade() {
                inner.on_error();
            }
        };
        let listeners = [
            Listener::new(&source, SESSION_EVENT, on_session),
            Listener::new(&source, "open", on_open),
            Listener::new(&source, "error", on_error),
        ];
        *this.source.borrow_mut() = Some(Source {
            source,
            _listeners: listeners,
        });
    }

    fn on_message(&self, msg: &MessageEvent) {
        let Some(data) = msg.data().as_string() else {
            return;
        };
        let Ok(json) = js_sys::JSON::parse(&data) else {
            return;
        };
        let Ok(status) = from_js::<SessionStatus>(json) else {
            return;
        };
        let id = msg.last_event_id();
        if !id.is_empty() {
            *self.last_id.borrow_mut() = Some(id);
        }
        self.attempts.set(0);
        let ended = status.state == SessionState::Ended;
        (self.on_event)(StreamEvent::Status(status));
        if ended {
            // The broker closes the stream after `ended`; closing first keeps
            // the browser from reconnecting to a finished session.
            self.close();
        }
    }

    fn on_error(self: Rc<Self>) {
        if self.closed.get() {
            return;
        }
        (self.on_event)(StreamEvent::Live(false));
        let gave_up = self
            .source
            .borrow()
            .as_ref()
            .is_none_or(|s| s.source.ready_state() == EventSource::CLOSED);
        if gave_up {
            // The browser will not retry (the ticket was refused, most
            // likely because it expired): get a new one.
            self.source.borrow_mut().take();
            Inner::retry_later(&self);
        }
        // Otherwise the browser is already reconnecting by itself.
    }

    /// Waits (longer after each failure), then gets a ticket and reconnects.
    fn retry_later(this: &Rc<Inner>) {
        let attempts = this.attempts.get();
        this.attempts.set(attempts.saturating_add(1));
        let delay = backoff_ms(attempts);
        let weak: Weak<Inner> = Rc::downgrade(this);
        let timer = Timeout::new(delay, move || {
            if let Some(inner) = weak.upgrade() {
                wasm_bindgen_futures::spawn_local(Inner::reconnect(inner));
            }
        });
        *this.retry.borrow_mut() = Some(timer);
    }

    async fn reconnect(this: Rc<Inner>) {
        let path = ["/v1/sessions/", &encode(&this.session_id), "/ticket"].concat();
        let answer = this
            .http
            .call::<(), StreamTicket>("POST", &path, Some(&this.token), None)
            .await
            .map_err(Error::from);
        if this.closed.get() {
            return;
        }
        match answer {
            Ok(ticket) => Inner::connect(&this, &ticket.ticket),
            Err(Error::InvalidToken) => (this.on_event)(StreamEvent::CredentialRefused),
            Err(_) => Inner::retry_later(&this),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_stream_url_carries_the_ticket_and_resumes_after_the_last_event() {
        assert_eq!(
            events_url("http://b", "ses_1", "tkt_a", None),
            "http://b/v1/sessions/ses_1/events?ticket=tkt_a"
        );
        assert_eq!(
            events_url("http://b", "ses_1", "tkt_a", Some("7")),
            "http://b/v1/sessions/ses_1/events?ticket=tkt_a&last_event_id=7"
        );
        assert_eq!(
            events_url("", "a/b", "x&y=z", Some("1 2")),
            "/v1/sessions/a%2Fb/events?ticket=x%26y%3Dz&last_event_id=1%202"
        );
    }

    #[test]
    fn reconnection_starts_at_once_then_backs_off_up_to_thirty_seconds() {
        let pauses: Vec<u32> = (0..8).map(backoff_ms).collect();
        assert_eq!(pauses, [0, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    }
}
