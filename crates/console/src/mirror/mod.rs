//! The agent's live, read-only view of the visitor's page, shown in the
//! session card while the session is `active`.
//!
//! The page is drawn into an `<iframe src="/mirror.html">`: a document of
//! the console's origin with its own policy (no script at all; styles,
//! images and fonts from anywhere, which the visitor's page needs and the
//! console's own policy would refuse). Its sandbox allows nothing but the
//! same origin, so the console can build the page with DOM calls
//! ([`render`]) while nothing in it can run. A transparent shield over the
//! frame takes every click, scroll and touch, and the mirrored document is
//! `inert`, so the agent can neither change the visitor's page nor steer
//! the copy: the view is exactly what the visitor sees.
//!
//! Above the frame: the page's title and address (as text, never a link)
//! and a status line. Over it, in the console's own layer: the visitor's
//! pointer and a ripple where they click, scaled like the frame, which is
//! the visitor's viewport shrunk to fit the card.
//!
//! # Layout
//! - this file: [`MirrorView`], the component (header, frame, scaling,
//!   pointer, status), and how frames from the socket are applied.
//! - [`render`]: the visitor's page in the frame's document.
//! - [`socket`]: the WebSocket to the broker, with reconnection;
//!   [`frame`]: its frames read from JSON.

pub(crate) mod frame;
mod render;
pub(crate) mod socket;

#[cfg(all(test, target_arch = "wasm32"))]
pub use render::REDACTED;

use crate::text::{self, say, MirrorLink, MirrorPage};
use crate::unique_id;
use agent_assist_protocol::mirror::{Op, Page, View, CLOSE_REPLACED, CLOSE_UNAUTHORIZED};
use agent_assist_web::dom::{append, attr, el, set_style, text_el, Listener};
use gloo_timers::callback::Timeout;
use render::Renderer;
use socket::{MirrorSocket, SocketEvent};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlIFrameElement, ResizeObserver};

/// The document the mirror is drawn into (`www/mirror.html`).
pub const FRAME_SRC: &str = "/mirror.html";

/// The viewport assumed until the visitor's page says otherwise.
const DEFAULT_VIEWPORT: (u32, u32) = (1280, 800);
/// Largest viewport side taken from a frame, in CSS pixels.
const MAX_SIDE: u32 = 16_384;
/// The frame is at most this share of the console's window height…
const MAX_HEIGHT_SHARE: f64 = 0.7;
/// …but never less than this many pixels high, if the width allows.
const MIN_MAX_HEIGHT: f64 = 240.0;
/// How long a click's ripple shows.
const RIPPLE_MS: u32 = 700;
/// When to scroll the page again after a snapshot, as its stylesheets and
/// images load and the page grows tall enough to reach the offset.
const RESCROLL_MS: [u32; 3] = [250, 1000, 3000];
/// Frames kept while the frame's document loads (a page resets the list).
const MAX_PENDING: usize = 10_000;

pub struct MirrorView {
    inner: Rc<Inner>,
}

struct Inner {
    this: Weak<Inner>,
    root: Element,
    page_title: Element,
    page_url: Element,
    status: Element,
    stage: Element,
    screen: Element,
    frame: HtmlIFrameElement,
    cover: Element,
    pointer: Element,
    ripple: Element,
    /// What the frame must have loaded before the page is drawn in it.
    frame_src: String,
    /// Set once the frame's document has loaded.
    renderer: RefCell<Option<Renderer>>,
    /// Frames received before that.
    pending: RefCell<Vec<View>>,
    viewport: Cell<(u32, u32)>,
    scale: Cell<f64>,
    pointer_at: Cell<Option<(i32, i32)>>,
    link: Cell<MirrorLink>,
    page: Cell<MirrorPage>,
    /// The broker's presence: whether the visitor's page is connected.
    online: Cell<bool>,
    socket: RefCell<Option<MirrorSocket>>,
    listeners: RefCell<Vec<Listener>>,
    observer: RefCell<Option<Observer>>,
    ripple_timer: RefCell<Option<Timeout>>,
    rescroll: RefCell<Option<Timeout>>,
}

/// A `ResizeObserver` that disconnects when dropped.
struct Observer {
    observer: ResizeObserver,
    _callback: Closure<dyn FnMut()>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

impl MirrorView {
    /// The view, drawing into a frame loading `frame_src` ([`FRAME_SRC`];
    /// tests use `about:blank`). Nothing is shown until it is given frames,
    /// by [`MirrorView::connect`] or [`MirrorView::receive`].
    pub fn new(doc: &Document, frame_src: &str) -> MirrorView {
        let root = el(doc, "section", "mirror");
        let head = el(doc, "div", "mirror-head");
        let heading = text_el(doc, "h3", "section-title mirror-heading", say::MIRROR_TITLE);
        let heading_id = unique_id("mirror-title");
        attr(&heading, "id", &heading_id);
        attr(&root, "aria-labelledby", &heading_id);
        append(&head, &heading);
        append(&root, &head);
        // One line says what is going on, for the eye and for the screen
        // reader: beside the heading, or centred over the covered frame
        // (`agent.css` moves it), never in two places at once.
        let status = el(doc, "p", "mirror-status");
        attr(&status, "role", "status");
        attr(&status, "aria-live", "polite");
        append(&root, &status);

        // The visitor's page title and address: text, never a link.
        let about = el(doc, "div", "mirror-page");
        let page_title = el(doc, "p", "mirror-page-title");
        append(&about, &page_title);
        let page_url = el(doc, "p", "mirror-url");
        append(&about, &page_url);
        append(&root, &about);

        // What keeps the shield over the frame is set here, not only in
        // `agent.css`: a stylesheet that fails to load must not leave the
        // copy of the visitor's page clickable.
        let stage = el(doc, "div", "mirror-stage");
        let screen = el(doc, "div", "mirror-screen");
        set_styles(&screen, &[("position", "relative"), ("overflow", "hidden")]);
        let frame: HtmlIFrameElement = el(doc, "iframe", "mirror-frame").unchecked_into();
        set_styles(
            &frame,
            &[
                ("position", "absolute"),
                ("top", "0"),
                ("left", "0"),
                ("border", "0"),
                ("transform-origin", "0 0"),
            ],
        );
        // Same origin so the console can draw into it; nothing else: no
        // scripts, forms, pop-ups or navigation of the console.
        attr(&frame, "sandbox", "allow-same-origin");
        attr(&frame, "title", say::MIRROR_FRAME);
        attr(&frame, "tabindex", "-1");
        attr(&frame, "referrerpolicy", "no-referrer");
        attr(&frame, "src", frame_src);
        append(&screen, &frame);
        let shield = el(doc, "div", "mirror-shield");
        attr(&shield, "aria-hidden", "true");
        set_styles(&shield, &[("position", "absolute"), ("inset", "0")]);
        append(&screen, &shield);
        let pointer = el(doc, "div", "mirror-pointer");
        attr(&pointer, "aria-hidden", "true");
        attr(&pointer, "hidden", "");
        append(&screen, &pointer);
        let ripple = el(doc, "div", "mirror-click");
        attr(&ripple, "aria-hidden", "true");
        append(&screen, &ripple);
        for marker in [&pointer, &ripple] {
            set_styles(
                marker,
                &[("position", "absolute"), ("pointer-events", "none")],
            );
        }
        // Hides the frame while there is nothing to show in it.
        let cover = el(doc, "div", "mirror-cover");
        attr(&cover, "aria-hidden", "true");
        set_styles(&cover, &[("position", "absolute"), ("inset", "0")]);
        append(&screen, &cover);
        append(&stage, &screen);
        append(&root, &stage);

        let inner = Rc::new_cyclic(|this| Inner {
            this: this.clone(),
            root,
            page_title,
            page_url,
            status,
            stage,
            screen,
            frame,
            cover,
            pointer,
            ripple,
            frame_src: frame_src.to_owned(),
            renderer: RefCell::new(None),
            pending: RefCell::new(Vec::new()),
            viewport: Cell::new(DEFAULT_VIEWPORT),
            scale: Cell::new(1.0),
            pointer_at: Cell::new(None),
            link: Cell::new(MirrorLink::Connecting),
            page: Cell::new(MirrorPage::None),
            online: Cell::new(true),
            socket: RefCell::new(None),
            listeners: RefCell::new(Vec::new()),
            observer: RefCell::new(None),
            ripple_timer: RefCell::new(None),
            rescroll: RefCell::new(None),
        });
        Inner::listen(&inner);
        inner.set_viewport(DEFAULT_VIEWPORT);
        inner.refresh();
        MirrorView { inner }
    }

    pub fn element(&self) -> &Element {
        &self.inner.root
    }

    /// Opens the view of session `session_id` at the broker at `base`,
    /// as the agent whose credential is `token`.
    pub fn connect(&self, base: &str, token: String, session_id: &str) {
        let Some(url) = socket::view_url(base, session_id) else {
            return;
        };
        let weak = Rc::downgrade(&self.inner);
        let on_event: Rc<dyn Fn(SocketEvent)> = Rc::new(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.on_socket(event);
            }
        });
        let socket = MirrorSocket::open(url, token, on_event);
        *self.inner.socket.borrow_mut() = Some(socket);
    }

    /// Applies a frame as if the broker had sent it.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub fn receive(&self, view: View) {
        self.inner.receive(view);
    }

    /// Whether the frame's document has loaded and takes frames at once.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub fn is_ready(&self) -> bool {
        self.inner.renderer.borrow().is_some()
    }

    /// The frame's document, once loaded.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub fn frame_document(&self) -> Option<Document> {
        let renderer = self.inner.renderer.borrow();
        renderer.as_ref().map(|r| r.document().clone())
    }

    /// What the socket would report; for tests without a broker.
    #[cfg(all(test, target_arch = "wasm32"))]
    pub fn socket_event(&self, event: SocketEvent) {
        self.inner.on_socket(event);
    }
}

impl Drop for MirrorView {
    fn drop(&mut self) {
        // Closes the socket and cancels its retry, stops observing, removes
        // the listeners and timers; then the nodes go.
        self.inner.socket.borrow_mut().take();
        self.inner.observer.borrow_mut().take();
        self.inner.listeners.borrow_mut().clear();
        self.inner.ripple_timer.borrow_mut().take();
        self.inner.rescroll.borrow_mut().take();
        self.inner.pending.borrow_mut().clear();
        self.inner.renderer.borrow_mut().take();
        self.inner.root.remove();
    }
}

impl Inner {
    fn listen(this: &Rc<Inner>) {
        let weak = Rc::downgrade(this);
        let on_load = {
            let weak = weak.clone();
            move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.on_frame_load();
                }
            }
        };
        let mut listeners = vec![Listener::new(&this.frame, "load", on_load)];
        let rescale = {
            let weak = weak.clone();
            move || {
                if let Some(inner) = weak.upgrade() {
                    inner.rescale();
                }
            }
        };
        if let Some(window) = web_sys::window() {
            let rescale = rescale.clone();
            // The height limit follows the window's height.
            listeners.push(Listener::new(&window, "resize", move |_| rescale()));
        }
        *this.listeners.borrow_mut() = listeners;
        // The width follows the card's, which changes without the window
        // resizing (the layout switches to two columns).
        let callback = Closure::<dyn FnMut()>::new(rescale);
        if let Ok(observer) = ResizeObserver::new(callback.as_ref().unchecked_ref()) {
            observer.observe(&this.stage);
            *this.observer.borrow_mut() = Some(Observer {
                observer,
                _callback: callback,
            });
        }
    }

    fn on_frame_load(&self) {
        let Some(doc) = self.frame.content_document() else {
            return;
        };
        // The frame's first, empty document is not ours to draw into yet
        // (a frame with a `src` may report it before loading the real one).
        let url = doc.url().unwrap_or_default();
        if self.frame_src != "about:blank" && url == "about:blank" {
            return;
        }
        *self.renderer.borrow_mut() = Some(Renderer::new(doc));
        // In the page by now, so it has a width to fit into.
        self.rescale();
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        for view in pending {
            self.receive(view);
        }
    }

    fn on_socket(&self, event: SocketEvent) {
        match event {
            SocketEvent::Open => self.link.set(MirrorLink::Open),
            SocketEvent::Frame(view) => return self.receive(view),
            SocketEvent::Lost => self.link.set(MirrorLink::Retrying),
            SocketEvent::Stopped(code) => {
                self.link.set(match code {
                    CLOSE_UNAUTHORIZED => MirrorLink::Refused,
                    CLOSE_REPLACED => MirrorLink::Elsewhere,
                    _ => MirrorLink::Closed,
                });
                // Nothing stale stays on screen under the message.
                self.clear(MirrorPage::None);
            }
        }
        self.refresh();
    }

    fn receive(&self, view: View) {
        if let View::Presence { online } = view {
            self.online.set(online);
            if !online {
                set_hidden(&self.pointer, true);
            }
            return self.refresh();
        }
        if self.renderer.borrow().is_none() {
            let mut pending = self.pending.borrow_mut();
            if matches!(view, View::Page(_) | View::Hidden) {
                pending.clear();
            }
            if pending.len() < MAX_PENDING {
                pending.push(view);
            }
            return;
        }
        match view {
            View::Page(page) => self.page(&page),
            View::Hidden => self.clear(MirrorPage::Hidden),
            View::Ops { ops } => self.ops(&ops),
            View::Presence { .. } => {}
        }
        self.refresh();
    }

    fn page(&self, page: &Page) {
        if let Some(renderer) = self.renderer.borrow_mut().as_mut() {
            renderer.page(page);
        }
        let title = page.title.trim();
        self.page_title.set_text_content(Some(if title.is_empty() {
            say::MIRROR_UNTITLED
        } else {
            title
        }));
        self.page_url.set_text_content(Some(&page.url));
        attr(&self.page_url, "title", &page.url);
        self.page.set(MirrorPage::Shown);
        self.pointer_at.set(None);
        set_hidden(&self.pointer, true);
        self.set_viewport((page.w, page.h));
        self.rescroll_later(0);
    }

    /// Blanks the frame: the visitor's page is not to be seen (`page`
    /// says why).
    fn clear(&self, page: MirrorPage) {
        if let Some(renderer) = self.renderer.borrow_mut().as_mut() {
            renderer.blank();
        }
        self.pending.borrow_mut().clear();
        self.rescroll.borrow_mut().take();
        self.page_title.set_text_content(None);
        self.page_url.set_text_content(None);
        let _ = self.page_url.remove_attribute("title");
        self.page.set(page);
        self.pointer_at.set(None);
        set_hidden(&self.pointer, true);
    }

    fn ops(&self, ops: &[Op]) {
        // Changes to a page the mirror does not show belong to nothing.
        if self.page.get() != MirrorPage::Shown {
            return;
        }
        let mut renderer = self.renderer.borrow_mut();
        let Some(renderer) = renderer.as_mut() else {
            return;
        };
        for op in ops {
            match op {
                Op::Viewport { w, h } => self.set_viewport((*w, *h)),
                Op::Pointer { x, y } => {
                    self.pointer_at.set(Some((*x, *y)));
                    self.place_pointer();
                }
                Op::Click { x, y } => self.click(*x, *y),
                op => renderer.apply(op),
            }
        }
        renderer.end_batch();
    }

    /// Scrolls the page again a little later, a few times.
    fn rescroll_later(&self, step: usize) {
        let Some(&delay) = RESCROLL_MS.get(step) else {
            self.rescroll.borrow_mut().take();
            return;
        };
        let weak = self.this.clone();
        let timer = Timeout::new(delay, move || {
            if let Some(inner) = weak.upgrade() {
                if let Some(renderer) = inner.renderer.borrow().as_ref() {
                    renderer.rescroll();
                }
                inner.rescroll_later(step + 1);
            }
        });
        *self.rescroll.borrow_mut() = Some(timer);
    }

    fn set_viewport(&self, (w, h): (u32, u32)) {
        let size = (w.clamp(1, MAX_SIDE), h.clamp(1, MAX_SIDE));
        self.viewport.set(size);
        set_style(&self.frame, "width", &px(f64::from(size.0)));
        set_style(&self.frame, "height", &px(f64::from(size.1)));
        self.rescale();
    }

    /// Fits the visitor's viewport into the room the card has: as wide as
    /// the stage, at most [`MAX_HEIGHT_SHARE`] of the window high, never
    /// enlarged, with the visitor's proportions.
    fn rescale(&self) {
        let (w, h) = self.viewport.get();
        let room = f64::from(self.stage.client_width());
        if room <= 0.0 {
            // Not laid out (not in the page yet): the observer calls again.
            return;
        }
        let window_height = web_sys::window()
            .and_then(|w| w.inner_height().ok())
            .and_then(|h| h.as_f64())
            .unwrap_or(800.0);
        let max_height = (window_height * MAX_HEIGHT_SHARE).max(MIN_MAX_HEIGHT);
        let scale = (room / f64::from(w))
            .min(max_height / f64::from(h))
            .min(1.0);
        self.scale.set(scale);
        set_style(&self.screen, "width", &px(f64::from(w) * scale));
        set_style(&self.screen, "height", &px(f64::from(h) * scale));
        set_style(
            &self.frame,
            "transform",
            &["scale(", &num(scale), ")"].concat(),
        );
        self.place_pointer();
    }

    /// Where viewport point `x`, `y` is in the console's layer, if on screen.
    fn at(&self, x: i32, y: i32) -> Option<String> {
        let (w, h) = self.viewport.get();
        if x < 0 || y < 0 || x > w as i32 || y > h as i32 {
            return None;
        }
        let s = self.scale.get();
        Some(
            [
                "translate(",
                &px(f64::from(x) * s),
                ", ",
                &px(f64::from(y) * s),
                ")",
            ]
            .concat(),
        )
    }

    fn place_pointer(&self) {
        let at = self.pointer_at.get().and_then(|(x, y)| self.at(x, y));
        match at {
            Some(at) => {
                set_style(&self.pointer, "transform", &at);
                set_hidden(&self.pointer, false);
            }
            None => set_hidden(&self.pointer, true),
        }
    }

    /// A ripple where the visitor clicked (a still ring for those who
    /// prefer reduced motion: see `agent.css`).
    fn click(&self, x: i32, y: i32) {
        let Some(at) = self.at(x, y) else {
            return;
        };
        set_style(&self.ripple, "transform", &at);
        let classes = self.ripple.class_list();
        let _ = classes.remove_1("on");
        // Reading the layout restarts the animation of a ripple still showing.
        let _ = self.ripple.client_width();
        let _ = classes.add_1("on");
        let ripple = self.ripple.clone();
        *self.ripple_timer.borrow_mut() = Some(Timeout::new(RIPPLE_MS, move || {
            let _ = ripple.class_list().remove_1("on");
        }));
    }

    /// Shows the status line, the cover over the frame, and the state
    /// classes the style sheet draws from.
    fn refresh(&self) {
        let (link, page, online) = (self.link.get(), self.page.get(), self.online.get());
        let sentence = text::mirror_status(link, page, online);
        // Rewriting the same text would make some screen readers repeat it.
        if self.status.text_content().as_deref() != Some(sentence) {
            self.status.set_text_content(Some(sentence));
        }
        let live = sentence == say::MIRROR_LIVE;
        let covered = text::mirror_covered(link, page);
        self.root.set_class_name(match (live, covered) {
            (true, _) => "mirror live",
            (false, true) => "mirror covered",
            (false, false) => "mirror",
        });
        set_hidden(&self.cover, !covered);
        // Content that may be out of date is dimmed.
        let stale = page == MirrorPage::Shown && !live;
        self.stage.set_class_name(if stale {
            "mirror-stage stale"
        } else {
            "mirror-stage"
        });
    }
}

/// `n` in CSS, written by JS's `Number#toString` (Rust's float formatting
/// is the largest single function a wasm module can carry).
fn num(n: f64) -> String {
    js_sys::Number::from((n * 1000.0).round() / 1000.0)
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_else(|_| "0".into())
}

fn px(n: f64) -> String {
    [num(n).as_str(), "px"].concat()
}

fn set_styles(e: &Element, styles: &[(&str, &str)]) {
    for (property, value) in styles {
        set_style(e, property, value);
    }
}

fn set_hidden(e: &Element, hidden: bool) {
    crate::session_panel::set_hidden(e, hidden);
}
