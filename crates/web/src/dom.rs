//! Small DOM helpers and [`Listener`], an event listener that removes itself
//! when dropped, so a component releases what it added just by being dropped
//! ([`CaptureListener`] likewise, for watching the page's own events).

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, Event, EventTarget};

/// Creates `<tag class="class">` in `doc`.
pub fn el(doc: &Document, tag: &str, class: &str) -> Element {
    // `createElement` only throws for invalid tag names, and ours are literals.
    // Not `expect`: the error's `Debug` (and the JS glue behind it) would be
    // linked into every module for a message never shown.
    let Ok(e) = doc.create_element(tag) else {
        unreachable!("valid tag name")
    };
    if !class.is_empty() {
        e.set_class_name(class);
    }
    e
}

/// Creates an element with text content (set as text, never parsed as HTML).
pub fn text_el(doc: &Document, tag: &str, class: &str, text: &str) -> Element {
    let e = el(doc, tag, class);
    e.set_text_content(Some(text));
    e
}

/// A `<button type="button">` with text: never a form's submit button by
/// accident, whatever page or form it ends up in.
pub fn button(doc: &Document, class: &str, label: &str) -> Element {
    let b = text_el(doc, "button", class, label);
    attr(&b, "type", "button");
    b
}

/// Sets an attribute. Fails only for invalid attribute names; ours are literals.
pub fn attr(e: &Element, name: &str, value: &str) {
    let _ = e.set_attribute(name, value);
}

pub fn append(parent: &Element, child: &Element) {
    let _ = parent.append_child(child);
}

pub fn focus(e: &Element) {
    if let Some(h) = e.dyn_ref::<web_sys::HtmlElement>() {
        let _ = h.focus();
    }
}

/// The current value of an `<input>` (empty for any other element). Read
/// as a property rather than through `HtmlInputElement`, which would add
/// three more imports to every module using this crate.
pub fn value(e: &Element) -> String {
    js_sys::Reflect::get(e, &"value".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Sets the value of an `<input>`, as the visitor typing it would.
pub fn set_value(e: &Element, value: &str) {
    let _ = js_sys::Reflect::set(e, &"value".into(), &value.into());
}

/// Sets one inline style property (`""` removes it). Through the CSSOM,
/// which a strict CSP allows, unlike a `style` attribute.
/// Whether `selector` is one CSS selector (list) that can safely be joined
/// with others into one list or a stylesheet rule: the browser parses it,
/// it ends where it seems to (`, *` after it is still a selector of its own:
/// an unclosed string or comment, or a trailing backslash, would swallow
/// what follows), and it has no braces (they would end a rule).
pub fn is_selector(doc: &Document, selector: &str) -> bool {
    let selector = selector.trim();
    if selector.is_empty() || selector.contains(['{', '}']) {
        return false;
    }
    let Ok(probe) = doc.create_element("div") else {
        return false;
    };
    probe.matches(&[selector, ", *"].concat()) == Ok(true)
}

pub fn set_style(e: &Element, property: &str, value: &str) {
    if let Some(h) = e.dyn_ref::<web_sys::HtmlElement>() {
        let _ = h.style().set_property(property, value);
    }
}

/// An event listener that is removed from its target when dropped.
pub struct Listener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl Listener {
    pub fn new(
        target: &EventTarget,
        kind: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> Listener {
        let callback = Closure::<dyn FnMut(Event)>::new(f);
        let _ = target.add_event_listener_with_callback(kind, callback.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            kind,
            callback,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.callback.as_ref().unchecked_ref());
    }
}

/// An event listener in the capture phase and passive, removed from its
/// target when dropped: for watching the page's own events. Capture sees
/// events that do not bubble (`scroll`) and those the page's handlers stop;
/// passive never delays or cancels the page's scrolling.
pub struct CaptureListener {
    target: EventTarget,
    kind: &'static str,
    callback: Closure<dyn FnMut(Event)>,
}

impl CaptureListener {
    pub fn new(
        target: &EventTarget,
        kind: &'static str,
        f: impl FnMut(Event) + 'static,
    ) -> CaptureListener {
        let callback = Closure::<dyn FnMut(Event)>::new(f);
        let options = web_sys::AddEventListenerOptions::new();
        options.set_capture(true);
        options.set_passive(true);
        let _ = target.add_event_listener_with_callback_and_add_event_listener_options(
            kind,
            callback.as_ref().unchecked_ref(),
            &options,
        );
        CaptureListener {
            target: target.clone(),
            kind,
            callback,
        }
    }
}

impl Drop for CaptureListener {
    fn drop(&mut self) {
        // A capture listener is only removed with `capture` set.
        let _ = self.target.remove_event_listener_with_callback_and_bool(
            self.kind,
            self.callback.as_ref().unchecked_ref(),
            true,
        );
    }
}
