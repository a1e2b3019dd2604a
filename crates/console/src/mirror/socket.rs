//! The agent's end of the mirror: a WebSocket on
//! `/v1/sessions/{id}/mirror/view` whose first frame is the agent's
//! credential ([`ViewerHello`]) and whose every frame after is a [`View`].
//!
//! The broker closes the socket with a `CLOSE_*` code. An unexpected close
//! (the broker restarted, the network dropped) is followed by a new
//! connection after a pause of 1 s, 2 s, 4 s, 8 s, then 15 s; the broker
//! then sends the page afresh. A refused credential, a session that is not
//! `active` any more and a view taken over by another window stop it for
//! good. Frames are read with the browser's `JSON.parse` and
//! [`read_view`], so no JSON library is linked into the console.

use super::frame::read_view;
use crate::stream::encode;
use agent_assist_protocol::mirror::{View, CLOSE_NOT_ACTIVE, CLOSE_REPLACED, CLOSE_UNAUTHORIZED};
use agent_assist_web::dom::Listener;
use gloo_timers::callback::Timeout;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

/// What the socket tells its owner.
#[derive(Debug)]
pub enum SocketEvent {
    /// Connected; the hello is sent.
    Open,
    Frame(View),
    /// The connection dropped; another attempt follows.
    Lost,
    /// The broker closed the view with this code and no attempt follows.
    Stopped(u16),
}

/// The view's URL, for a broker at `base` (`http(s)://host[:port]`).
pub fn view_url(base: &str, session_id: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = base.strip_prefix("https://") {
        ("wss://", rest)
    } else if let Some(rest) = base.strip_prefix("http://") {
        ("ws://", rest)
    } else {
        return None;
    };
    Some(
        [
            scheme,
            rest,
            "/v1/sessions/",
            &encode(session_id),
            "/mirror/view",
        ]
        .concat(),
    )
}

/// The pause before reconnection attempt `attempt` (0 for the first after
/// a drop): 1 s, doubling, at most 15 s.
pub fn backoff_ms(attempt: u32) -> u32 {
    1000u32.saturating_mul(1 << attempt.min(4)).min(15_000)
}

/// Whether a close code means the view must not be opened again.
pub fn is_final(code: u16) -> bool {
    matches!(code, CLOSE_UNAUTHORIZED | CLOSE_NOT_ACTIVE | CLOSE_REPLACED)
}

pub struct MirrorSocket {
    inner: Rc<Inner>,
}

struct Inner {
    url: String,
    token: String,
    on_event: Rc<dyn Fn(SocketEvent)>,
    socket: RefCell<Option<Socket>>,
    retry: RefCell<Option<Timeout>>,
    /// Failed connections since a frame last arrived; sets the next pause.
    attempts: Cell<u32>,
    closed: Cell<bool>,
}

/// One WebSocket and its listeners; closed when dropped.
struct Socket {
    socket: WebSocket,
    _listeners: [Listener; 3],
}

impl Drop for Socket {
    fn drop(&mut self) {
        // 1000: the console is done with the view (panel gone, sign-out).
        let _ = self.socket.close_with_code(1000);
    }
}

impl MirrorSocket {
    /// Connects to `url` and sends `token` as the hello.
    pub fn open(url: String, token: String, on_event: Rc<dyn Fn(SocketEvent)>) -> MirrorSocket {
        let inner = Rc::new(Inner {
            url,
            token,
            on_event,
            socket: RefCell::new(None),
            retry: RefCell::new(None),
            attempts: Cell::new(0),
            closed: Cell::new(false),
        });
        Inner::connect(&inner);
        MirrorSocket { inner }
    }
}

impl Drop for MirrorSocket {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl Inner {
    fn close(&self) {
        self.closed.set(true);
        self.retry.borrow_mut().take();
        // This may run inside one of the socket's own listeners, which
        // wasm-bindgen allows (see `stream.rs`).
        let socket = self.socket.borrow_mut().take();
        drop(socket);
    }

    fn connect(this: &Rc<Inner>) {
        if this.closed.get() {
            return;
        }
        let socket = match WebSocket::new(&this.url) {
            Ok(socket) => socket,
            // A malformed URL or a blocked port; try again later rather
            // than give up on the view.
            Err(_) => return Inner::lost(this),
        };
        let weak = Rc::downgrade(this);
        let on_open = {
            let weak = weak.clone();
            move |_: Event| {
                if let Some(inner) = weak.upgrade() {
                    inner.hello();
                }
            }
        };
        let on_message = {
            let weak = weak.clone();
            move |e: Event| {
                if let (Some(inner), Some(msg)) = (weak.upgrade(), e.dyn_ref::<MessageEvent>()) {
                    inner.on_message(msg);
                }
            }
        };
        // `error` is always followed by `close`, which decides what next.
        let on_close = move |e: Event| {
            if let Some(inner) = weak.upgrade() {
                let code = e.dyn_ref::<CloseEvent>().map_or(1006, CloseEvent::code);
                inner.on_close(code);
            }
        };
        let listeners = [
            Listener::new(&socket, "open", on_open),
            Listener::new(&socket, "message", on_message),
            Listener::new(&socket, "close", on_close),
        ];
        *this.socket.borrow_mut() = Some(Socket {
            socket,
            _listeners: listeners,
        });
    }

    /// Sends [`agent_assist_protocol::mirror::ViewerHello`], written with
    /// the browser's `JSON.stringify`.
    fn hello(&self) {
        let hello = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&hello, &"t".into(), &"hello".into());
        let _ = js_sys::Reflect::set(&hello, &"token".into(), &JsValue::from_str(&self.token));
        let Ok(text) = js_sys::JSON::stringify(&hello) else {
            return;
        };
        let sent = match &*self.socket.borrow() {
            Some(s) => s.socket.send_with_str(&String::from(text)).is_ok(),
            None => false,
        };
        if sent {
            (self.on_event)(SocketEvent::Open);
        }
    }

    fn on_message(&self, msg: &MessageEvent) {
        // The broker only sends text frames; anything else is skipped.
        let Some(data) = msg.data().as_string() else {
            return;
        };
        let Ok(json) = js_sys::JSON::parse(&data) else {
            return;
        };
        let Some(view) = read_view(json) else {
            return;
        };
        self.attempts.set(0);
        (self.on_event)(SocketEvent::Frame(view));
    }

    fn on_close(self: Rc<Self>, code: u16) {
        if self.closed.get() {
            return;
        }
        self.socket.borrow_mut().take();
        if is_final(code) {
            self.close();
            (self.on_event)(SocketEvent::Stopped(code));
        } else {
            Inner::lost(&self);
        }
    }

    /// Reports the drop, then connects again after a pause.
    fn lost(this: &Rc<Inner>) {
        (this.on_event)(SocketEvent::Lost);
        if this.closed.get() {
            return;
        }
        let attempts = this.attempts.get();
        this.attempts.set(attempts.saturating_add(1));
        let weak: Weak<Inner> = Rc::downgrade(this);
        let timer = Timeout::new(backoff_ms(attempts), move || {
            if let Some(inner) = weak.upgrade() {
                Inner::connect(&inner);
            }
        });
        *this.retry.borrow_mut() = Some(timer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_view_socket_follows_the_brokers_scheme() {
        assert_eq!(
            view_url("https://broker.example", "ses_1").as_deref(),
            Some("wss://broker.example/v1/sessions/ses_1/mirror/view")
        );
        assert_eq!(
            view_url("http://127.0.0.1:8080", "a/b").as_deref(),
            Some("ws://127.0.0.1:8080/v1/sessions/a%2Fb/mirror/view")
        );
        assert_eq!(view_url("file://x", "ses_1"), None);
    }

    #[test]
    fn reconnection_waits_one_second_then_backs_off_up_to_fifteen() {
        let pauses: Vec<u32> = (0..7).map(backoff_ms).collect();
        assert_eq!(pauses, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    }

    #[test]
    fn only_a_refusal_an_ended_session_or_a_takeover_stops_the_view() {
        assert!(is_final(CLOSE_UNAUTHORIZED));
        assert!(is_final(CLOSE_NOT_ACTIVE));
        assert!(is_final(CLOSE_REPLACED));
        for code in [1000, 1001, 1006, 1011, 4400, 4429] {
            assert!(!is_final(code), "{code}");
        }
    }
}
