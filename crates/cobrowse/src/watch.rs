//! The page's hooks while it is mirrored: a `MutationObserver` on the
//! document, the visitor's input, scrolling, resizing, pointer and
//! navigation, and the flush that runs once per animation frame after
//! anything happened (with a timer in case the tab is in the background,
//! where animation frames stop). Everything is removed when dropped.

use agent_assist_web::dom::CaptureListener;
use js_sys::Array;
use std::cell::Cell;
use std::rc::{Rc, Weak};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{
    Document, Element, Event, EventTarget, MouseEvent, MutationObserver, MutationObserverInit,
    Window,
};

/// Longest wait for a flush when no animation frame comes.
const FLUSH_FALLBACK_MS: i32 = 250;

/// What the page did; `Flush` is the moment to send.
pub enum Hook {
    Mutations(Array),
    Input(Element),
    /// The page (`None`) or an element scrolled.
    Scroll(Option<Element>),
    Resize,
    Pointer(i32, i32),
    Click(i32, i32),
    /// `popstate` or `hashchange`: the page's address may have changed.
    Navigate,
    Flush,
}

pub type Handler = Rc<dyn Fn(Hook)>;

pub struct Watch {
    observer: MutationObserver,
    _on_mutations: Closure<dyn FnMut(Array)>,
    _listeners: Vec<CaptureListener>,
    frame: Rc<Frame>,
}

impl Watch {
    pub fn start(window: &Window, doc: &Document, handler: Handler) -> Option<Watch> {
        let frame = Frame::new(window.clone(), handler.clone());
        let on_mutations = {
            let (handler, frame) = (handler.clone(), Rc::downgrade(&frame));
            Closure::<dyn FnMut(Array)>::new(move |records: Array| {
                handler(Hook::Mutations(records));
                schedule(&frame);
            })
        };
        let observer = MutationObserver::new(on_mutations.as_ref().unchecked_ref()).ok()?;
        observer.observe_with_options(doc, &observer_init()).ok()?;

        let hook = |target: &EventTarget, kind: &'static str, make: fn(&Event) -> Option<Hook>| {
            let (handler, frame) = (handler.clone(), Rc::downgrade(&frame));
            CaptureListener::new(target, kind, move |e: Event| {
                if let Some(hook) = make(&e) {
                    handler(hook);
                    schedule(&frame);
                }
            })
        };
        let listeners = vec![
            hook(doc, "input", |e| target_element(e).map(Hook::Input)),
            hook(doc, "change", |e| target_element(e).map(Hook::Input)),
            hook(doc, "scroll", |e| Some(Hook::Scroll(target_element(e)))),
            hook(doc, "pointermove", |e| {
                pointer(e).map(|(x, y)| Hook::Pointer(x, y))
            }),
            hook(doc, "pointerdown", |e| {
                pointer(e).map(|(x, y)| Hook::Click(x, y))
            }),
            hook(window, "resize", |_| Some(Hook::Resize)),
            hook(window, "popstate", |_| Some(Hook::Navigate)),
            hook(window, "hashchange", |_| Some(Hook::Navigate)),
        ];
        Some(Watch {
            observer,
            _on_mutations: on_mutations,
            _listeners: listeners,
            frame,
        })
    }

    /// Records the observer has not handed over yet (taken at each flush,
    /// so a flush sees every change made before it).
    pub fn take_records(&self) -> Array {
        self.observer.take_records()
    }
}

/// What the observer watches: the whole document's tree, attributes (with
/// their old values: the old `type` tells a password field that was made
/// visible) and text.
pub fn observer_init() -> MutationObserverInit {
    let init = MutationObserverInit::new();
    init.set_child_list(true);
    init.set_attributes(true);
    init.set_attribute_old_value(true);
    init.set_character_data(true);
    init.set_subtree(true);
    init
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.observer.disconnect();
        self.frame.cancel();
    }
}

fn target_element(e: &Event) -> Option<Element> {
    e.target()?.dyn_into::<Element>().ok()
}

fn pointer(e: &Event) -> Option<(i32, i32)> {
    let m = e.dyn_ref::<MouseEvent>()?;
    Some((m.client_x(), m.client_y()))
}

/// The pending flush: an animation frame and a fallback timer, whichever
/// comes first.
struct Frame {
    window: Window,
    raf: Cell<Option<i32>>,
    timer: Cell<Option<i32>>,
    callback: Closure<dyn FnMut()>,
}

impl Frame {
    fn new(window: Window, handler: Handler) -> Rc<Frame> {
        Rc::new_cyclic(|weak: &Weak<Frame>| {
            let weak = weak.clone();
            let callback = Closure::<dyn FnMut()>::new(move || {
                if let Some(frame) = weak.upgrade() {
                    frame.cancel();
                    handler(Hook::Flush);
                }
            });
            Frame {
                window,
                raf: Cell::new(None),
                timer: Cell::new(None),
                callback,
            }
        })
    }

    fn cancel(&self) {
        if let Some(id) = self.raf.take() {
            let _ = self.window.cancel_animation_frame(id);
        }
        if let Some(id) = self.timer.take() {
            self.window.clear_timeout_with_handle(id);
        }
    }
}

fn schedule(frame: &Weak<Frame>) {
    let Some(frame) = frame.upgrade() else {
        return;
    };
    if frame.raf.get().is_some() || frame.timer.get().is_some() {
        return;
    }
    let f = frame.callback.as_ref().unchecked_ref();
    frame.raf.set(frame.window.request_animation_frame(f).ok());
    frame.timer.set(
        frame
            .window
            .set_timeout_with_callback_and_timeout_and_arguments_0(f, FLUSH_FALLBACK_MS)
            .ok(),
    );
}
