//! Follows one session's events over Server-Sent Events.
//!
//! `EventSource` reconnects by itself after a dropped connection and sends
//! `Last-Event-ID`, so nothing is missed. When it gives up (for instance the
//! ticket in its URL expired), the owner is told through `on_closed` with the
//! last event id seen, fetches a new ticket, and opens a new stream from there.

use agent_assist_protocol::{SessionStatus, SESSION_EVENT};
use agent_assist_web::dom::Listener;
use agent_assist_web::js_de::from_js;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Event, EventSource, MessageEvent};

/// `EventSource.readyState` once it will not reconnect by itself.
const CLOSED: u16 = 2;

pub struct SessionStream {
    source: EventSource,
    _listeners: [Listener; 2],
}

impl SessionStream {
    /// Opens `base/v1/sessions/{id}/events?ticket=…`, continuing after
    /// `last_event_id` when given.
    pub fn open(
        base: &str,
        session_id: &str,
        ticket: &str,
        last_event_id: Option<&str>,
        on_status: Rc<dyn Fn(SessionStatus)>,
        on_closed: Rc<dyn Fn(Option<String>)>,
    ) -> Option<SessionStream> {
        let mut url = [base, "/v1/sessions/", session_id, "/events?ticket=", ticket].concat();
        if let Some(id) = last_event_id {
            url.push_str("&last_event_id=");
            url.push_str(id);
        }
        let source = EventSource::new(&url).ok()?;
        let last_id: Rc<RefCell<Option<String>>> =
            Rc::new(RefCell::new(last_event_id.map(str::to_owned)));

        let seen = last_id.clone();
        let on_event = Listener::new(&source, SESSION_EVENT, move |e: Event| {
            let Some(msg) = e.dyn_ref::<MessageEvent>() else {
                return;
            };
            let Some(text) = msg.data().as_string() else {
                return;
            };
            let Ok(json) = js_sys::JSON::parse(&text) else {
                return;
            };
            if let Ok(status) = from_js::<SessionStatus>(json) {
                *seen.borrow_mut() = Some(msg.last_event_id());
                on_status(status);
            }
        });
        let src = source.clone();
        let on_error = Listener::new(&source, "error", move |_| {
            if src.ready_state() == CLOSED {
                on_closed(last_id.borrow().clone());
            }
        });
        Some(SessionStream {
            source,
            _listeners: [on_event, on_error],
        })
    }
}

impl Drop for SessionStream {
    fn drop(&mut self) {
        self.source.close();
    }
}
