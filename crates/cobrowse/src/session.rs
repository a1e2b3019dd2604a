//! One visitor's mirror: the socket to the broker, what is sent when, and
//! reconnection.
//!
//! After the socket opens: [`Up::Hello`] with the device token; on
//! [`Down::Welcome`], a snapshot of the page if its path is shared, else
//! [`Up::Hidden`]; then one [`Up::Ops`] per flush while the page is shared.
//! An abnormal close reconnects after 1 s, 2 s, 4 s, … up to 15 s (5 s after
//! [`CLOSE_TOO_FAST`]) with a fresh snapshot and new ids; the broker's
//! closes for good (unauthorized, session not active, replaced) stop.

use crate::changes::Tracker;
use crate::options::Options;
use crate::outline::Outline;
use crate::policy::Policy;
use crate::serialize::{page_url, Serializer};
use crate::watch::{Handler, Hook, Watch};
use agent_assist_protocol::mirror::{
    page_shared, Down, Page, Up, CLOSE_NOT_ACTIVE, CLOSE_REPLACED, CLOSE_TOO_FAST,
    CLOSE_UNAUTHORIZED, MAX_FRAME_BYTES,
};
use agent_assist_web::dom::Listener;
use agent_assist_web::js_de::from_js;
use agent_assist_web::json;
use gloo_timers::callback::Timeout;
use js_sys::{Array, Function};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, Document, Event, MessageEvent, WebSocket, Window};

/// Longest pause between two reconnection attempts.
const MAX_BACKOFF_MS: u32 = 15_000;
/// The pause after the broker said we sent too fast.
const TOO_FAST_PAUSE_MS: u32 = 5_000;
/// Frames are held back while this much is still queued on the socket (a
/// slow link); a fresh snapshot follows once it drains.
const MAX_BUFFERED: u32 = 8 << 20;

/// The pause before reconnection attempt `attempt` (0 for the first).
pub fn backoff_ms(attempt: u32) -> u32 {
    1000u32
        .saturating_mul(1 << attempt.min(4))
        .min(MAX_BACKOFF_MS)
}

/// What `onState` is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Sharing,
    NotShared,
    Stopped,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Sharing => "sharing",
            State::NotShared => "not_shared",
            State::Stopped => "stopped",
        }
    }
}

pub struct Session {
    window: Window,
    doc: Document,
    socket_url: String,
    token: String,
    on_state: Option<Function>,
    /// Set by `stop()`, and read by every callback first: `stop()` may be
    /// called from `onState` while a callback is still running.
    stopped: Cell<bool>,
    core: RefCell<Core>,
}

struct Core {
    link: Option<Link>,
    retry: Option<Timeout>,
    /// Failed connections since the last welcome; sets the next pause.
    attempts: u32,
    /// The broker accepted this socket's hello: the page may be sent.
    welcomed: bool,
    /// The site's shared-page patterns, from the welcome.
    pages: Vec<String>,
    tracker: Tracker,
    watch: Option<Watch>,
    /// Mutation records the observer handed over since the last flush.
    records: Vec<Array>,
    /// The address last looked at, and whether it is shared.
    page: Option<(String, bool)>,
    outline: Option<Outline>,
    /// The last state told to `onState`.
    state: Option<State>,
    /// A frame was held back (the socket's buffer is full): the next flush
    /// sends a fresh snapshot instead of ops.
    behind: bool,
}

/// Where frames go: the broker's socket (or, in tests, a list).
enum Link {
    Socket(Socket),
    #[cfg(all(test, target_arch = "wasm32"))]
    Test(Rc<RefCell<Vec<String>>>),
}

impl Link {
    fn ready(&self) -> bool {
        match self {
            Link::Socket(s) => s.ws.buffered_amount() <= MAX_BUFFERED,
            #[cfg(all(test, target_arch = "wasm32"))]
            Link::Test(_) => true,
        }
    }

    fn send(&self, text: &str) {
        match self {
            Link::Socket(s) => {
                let _ = s.ws.send_with_str(text);
            }
            #[cfg(all(test, target_arch = "wasm32"))]
            Link::Test(sent) => sent.borrow_mut().push(text.to_owned()),
        }
    }
}

/// The socket and its listeners; closed when dropped.
struct Socket {
    ws: WebSocket,
    _listeners: [Listener; 3],
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.ws.close_with_code(1000);
    }
}

impl Session {
    pub fn new(options: Options, window: Window, doc: Document) -> Rc<Session> {
        let policy = Rc::new(Policy::new(
            options.redact,
            options.unredact,
            options.private_by_default,
        ));
        let tracker = Tracker::new(Serializer::new(doc.clone(), policy));
        Rc::new(Session {
            window,
            doc,
            socket_url: options.socket_url,
            token: options.token,
            on_state: options.on_state,
            stopped: Cell::new(false),
            core: RefCell::new(Core {
                link: None,
                retry: None,
                attempts: 0,
                welcomed: false,
                pages: Vec::new(),
                tracker,
                watch: None,
                records: Vec::new(),
                page: None,
                outline: None,
                state: None,
                behind: false,
            }),
        })
    }

    pub fn start(self: &Rc<Self>) {
        self.update(|core| self.connect(core));
    }

    /// Closes the socket and removes everything the mirror added. Idempotent.
    pub fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        // Busy only when `onState` called this from inside a callback, which
        // tears down as it returns (see `update`).
        if let Ok(mut core) = self.core.try_borrow_mut() {
            core.teardown();
        }
    }

    /// Runs `f` on the state unless stopped, then tells `onState` about a
    /// new state. Nothing here throws into the page: every failure is
    /// skipped, and `onState`'s own exceptions are ignored.
    fn update(&self, f: impl FnOnce(&mut Core) -> Option<State>) {
        if self.stopped.get() {
            return;
        }
        let notify = {
            let Ok(mut core) = self.core.try_borrow_mut() else {
                return;
            };
            let new = f(&mut core).filter(|s| core.state != Some(*s));
            if new.is_some() {
                core.state = new;
            }
            new
        };
        if let (Some(state), Some(on_state)) = (notify, &self.on_state) {
            let _ = on_state.call1(&JsValue::NULL, &JsValue::from_str(state.as_str()));
        }
        if self.stopped.get() {
            if let Ok(mut core) = self.core.try_borrow_mut() {
                core.teardown();
            }
        }
    }

    fn connect(self: &Rc<Self>, core: &mut Core) -> Option<State> {
        core.retry = None;
        core.welcomed = false;
        let ws = match WebSocket::new(&self.socket_url) {
            Ok(ws) => ws,
            Err(_) => {
                self.retry_later(core, None);
                return Some(State::Connecting);
            }
        };
        let weak = Rc::downgrade(self);
        let on_open = {
            let weak = weak.clone();
            move |_: Event| {
                if let Some(s) = weak.upgrade() {
                    s.update(|core| {
                        let hello = Up::Hello {
                            token: s.token.clone(),
                        };
                        send(core, &hello);
                        None
                    });
                }
            }
        };
        let on_message = {
            let weak = weak.clone();
            move |e: Event| {
                let text = e
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string());
                if let (Some(s), Some(text)) = (weak.upgrade(), text) {
                    s.on_text(&text);
                }
            }
        };
        let on_close = move |e: Event| {
            let code = e.dyn_ref::<CloseEvent>().map_or(1006, |c| c.code());
            if let Some(s) = weak.upgrade() {
                s.on_close(code);
            }
        };
        core.link = Some(Link::Socket(Socket {
            _listeners: [
                Listener::new(&ws, "open", on_open),
                Listener::new(&ws, "message", on_message),
                Listener::new(&ws, "close", on_close),
            ],
            ws,
        }));
        Some(State::Connecting)
    }

    /// A frame from the broker.
    pub(crate) fn on_text(self: &Rc<Self>, text: &str) {
        let Ok(json) = js_sys::JSON::parse(text) else {
            return;
        };
        match from_js::<Down>(json) {
            Ok(Down::Welcome { pages }) => self.update(|core| {
                core.pages = pages;
                core.welcomed = true;
                core.attempts = 0;
                if core.watch.is_none() {
                    core.watch = Watch::start(&self.window, &self.doc, self.handler());
                }
                self.look(core, true)
            }),
            Ok(Down::Resync) => self.update(|core| {
                if core.welcomed && core.page.as_ref().is_some_and(|p| p.1) {
                    self.snapshot(core)
                } else {
                    None
                }
            }),
            Err(_) => {}
        }
    }

    pub(crate) fn on_close(self: &Rc<Self>, code: u16) {
        self.update(|core| {
            core.link = None;
            core.watch = None;
            core.welcomed = false;
            core.records.clear();
            core.tracker.reset();
            core.page = None;
            match code {
                CLOSE_UNAUTHORIZED | CLOSE_NOT_ACTIVE | CLOSE_REPLACED => {
                    self.stopped.set(true);
                    Some(State::Stopped)
                }
                CLOSE_TOO_FAST => {
                    self.retry_later(core, Some(TOO_FAST_PAUSE_MS));
                    None
                }
                _ => {
                    self.retry_later(core, None);
                    None
                }
            }
        });
    }

    /// Reconnects after `pause`, or after the next backoff step.
    fn retry_later(self: &Rc<Self>, core: &mut Core, pause: Option<u32>) {
        let pause = pause.unwrap_or_else(|| {
            let p = backoff_ms(core.attempts);
            core.attempts = core.attempts.saturating_add(1);
            p
        });
        let weak = Rc::downgrade(self);
        core.retry = Some(Timeout::new(pause, move || {
            if let Some(s) = weak.upgrade() {
                s.update(|core| s.connect(core));
            }
        }));
    }

    fn handler(self: &Rc<Self>) -> Handler {
        let weak = Rc::downgrade(self);
        Rc::new(move |hook: Hook| {
            if let Some(s) = weak.upgrade() {
                s.update(|core| s.on_hook(core, hook));
            }
        })
    }

    fn on_hook(&self, core: &mut Core, hook: Hook) -> Option<State> {
        let sharing = core.welcomed && core.page.as_ref().is_some_and(|p| p.1);
        match hook {
            Hook::Flush => return self.flush(core),
            _ if !sharing => {}
            Hook::Mutations(records) => core.records.push(records),
            Hook::Input(el) => core.tracker.note_value(el),
            Hook::Scroll(el) => core.tracker.note_scroll(el),
            Hook::Resize => core.tracker.note_viewport(),
            Hook::Pointer(x, y) => core.tracker.note_pointer(x, y),
            Hook::Click(x, y) => core.tracker.note_click(x, y),
            // The flush that follows looks at the address.
            Hook::Navigate => {}
        }
        None
    }

    /// Sends what changed since the last flush: a new snapshot or
    /// `Hidden` after a navigation, else at most one `Ops` frame.
    fn flush(&self, core: &mut Core) -> Option<State> {
        if !core.welcomed {
            return None;
        }
        if let Some(watch) = &core.watch {
            core.records.push(watch.take_records());
        }
        let records = std::mem::take(&mut core.records);
        if core.page.as_ref().map(|p| p.0.as_str()) != Some(page_url().as_str()) {
            return self.look(core, false);
        }
        if !core.page.as_ref().is_some_and(|p| p.1) {
            return None;
        }
        if core.behind {
            let ready = core.link.as_ref().is_some_and(Link::ready);
            return if ready { self.snapshot(core) } else { None };
        }
        let all = Array::new();
        for batch in &records {
            for record in batch.iter() {
                all.push(&record);
            }
        }
        let ops = core.tracker.ops(&all);
        if ops.is_empty() {
            return None;
        }
        match frame(&Up::Ops { ops }) {
            Some(text) => {
                send_text(core, &text);
                None
            }
            // Too many changes for one frame: the page as it is now.
            None => self.snapshot(core),
        }
    }

    /// Looks at the page's address: a snapshot if it is shared, else
    /// `Hidden`. `force`: even if the address did not change.
    fn look(&self, core: &mut Core, force: bool) -> Option<State> {
        let url = page_url();
        if !force && core.page.as_ref().is_some_and(|p| p.0 == url) {
            return None;
        }
        let path = self.window.location().pathname().unwrap_or_default();
        if page_shared(&core.pages, &path) {
            core.page = Some((url, true));
            if core.outline.is_none() {
                core.outline = Outline::add(&self.doc, &core.tracker.ser.policy);
            }
            self.snapshot(core)
        } else {
            let was_hidden = core.page.as_ref().is_some_and(|p| !p.1);
            core.page = Some((url, false));
            self.hide(core, force || !was_hidden)
        }
    }

    /// Nothing of this page is sent: `Hidden` (when `tell`), no outline.
    fn hide(&self, core: &mut Core, tell: bool) -> Option<State> {
        core.tracker.reset();
        core.records.clear();
        core.outline = None;
        core.behind = false;
        if tell {
            send(core, &Up::Hidden);
        }
        Some(State::NotShared)
    }

    /// Sends the page as it is now, with new ids.
    fn snapshot(&self, core: &mut Core) -> Option<State> {
        // The snapshot holds every change made so far.
        core.records.clear();
        if let Some(watch) = &core.watch {
            watch.take_records();
        }
        let page = core
            .tracker
            .snapshot(core.outline.as_ref().map(Outline::sheet));
        let mut up = Up::Page(page);
        let mut text = frame(&up);
        if text.is_none() {
            if let Up::Page(page) = &mut up {
                slim(page);
            }
            text = frame(&up);
        }
        let Some(text) = text else {
            web_sys::console::warn_1(&"Agent Assist: this page is too large to share".into());
            if let Some((_, shared)) = core.page.as_mut() {
                *shared = false;
            }
            return self.hide(core, true);
        };
        core.behind = false;
        send_text(core, &text);
        Some(State::Sharing)
    }
}

impl Core {
    fn teardown(&mut self) {
        self.link = None;
        self.retry = None;
        self.watch = None;
        self.outline = None;
        self.records.clear();
        self.welcomed = false;
        self.tracker.reset();
    }
}

/// A frame's JSON, or `None` if it is larger than the broker accepts.
fn frame(up: &Up) -> Option<String> {
    json::to_string(up)
        .ok()
        .filter(|text| text.len() <= MAX_FRAME_BYTES)
}

fn send(core: &mut Core, up: &Up) {
    if let Some(text) = frame(up) {
        send_text(core, &text);
    }
}

fn send_text(core: &mut Core, text: &str) {
    match &core.link {
        Some(link) if link.ready() => link.send(text),
        Some(_) => core.behind = true,
        None => {}
    }
}

/// A page too large for one frame, without its stylesheets (constructed
/// sheets and the text of `<style>` elements): the agent sees it unstyled
/// rather than not at all.
fn slim(page: &mut Page) {
    page.sheets.clear();
    // Snapshot ids grow in document order, so this list is sorted.
    let styles: Vec<u32> = page
        .nodes
        .iter()
        .filter(|n| n.e.as_deref() == Some("style"))
        .map(|n| n.i)
        .collect();
    for node in &mut page.nodes {
        if node.x.is_some() && styles.binary_search(&node.p).is_ok() {
            node.x = Some(String::new());
        }
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
impl Session {
    /// Sends to a list instead of a socket, as if the socket had just opened.
    pub(crate) fn attach_test_link(&self, sent: Rc<RefCell<Vec<String>>>) {
        if let Ok(mut core) = self.core.try_borrow_mut() {
            core.link = Some(Link::Test(sent));
            let hello = Up::Hello {
                token: self.token.clone(),
            };
            send(&mut core, &hello);
        }
    }

    /// Runs a flush now, as the next animation frame would.
    pub(crate) fn flush_now(self: &Rc<Self>) {
        self.update(|core| self.flush(core));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn reconnection_backs_off_from_one_second_up_to_fifteen() {
        let pauses: Vec<u32> = (0..7).map(backoff_ms).collect();
        assert_eq!(pauses, [1000, 2000, 4000, 8000, 15000, 15000, 15000]);
    }
}
