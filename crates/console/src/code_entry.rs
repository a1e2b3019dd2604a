//! The code entry card: six one-digit boxes (3 + 3) under one group label,
//! a Connect button, an alert region for errors and a status line.
//!
//! Typing a digit fills the box and moves on, anything else is ignored;
//! Backspace on an empty box clears the one before; arrows, Home and End
//! move; a pasted code (`123456`, `123 456`, `123-456`) fills all six
//! whichever box it lands in. The sixth digit submits by itself.
//!
//! Digits typed on a hardware keyboard are handled on `keydown`; the `input`
//! handler covers what arrives without a usable key (virtual keyboards,
//! IME, autofill) and puts the boxes back in shape.

use crate::text::{self, read_paste, say, Paste, CODE_LEN};
use crate::unique_id;
use agent_assist_web::dom::{self, append, attr, el, text_el, Listener};
use gloo_timers::callback::{Interval, Timeout};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::JsCast;
use web_sys::{
    ClipboardEvent, Document, Element, Event, HtmlButtonElement, HtmlFieldSetElement,
    HtmlInputElement, InputEvent, KeyboardEvent,
};

pub struct CodeEntry {
    root: Element,
    parts: Rc<Parts>,
    _listeners: Vec<Listener>,
}

/// What the listeners and the lock's timers share.
struct Parts {
    boxes: Vec<HtmlInputElement>,
    fieldset: HtmlFieldSetElement,
    connect: HtmlButtonElement,
    alert: Element,
    status: Element,
    lock_note: Element,
    on_submit: Rc<dyn Fn(String)>,
    /// While the broker refuses codes (429): the countdown and the unlock.
    /// Their callbacks hold a `Weak`, so dropping the card cancels both.
    lock: RefCell<Option<(Interval, Timeout)>>,
}

impl CodeEntry {
    /// `on_submit` gets the six digits, once all are entered.
    pub fn new(doc: &Document, on_submit: Rc<dyn Fn(String)>) -> CodeEntry {
        let root = el(doc, "section", "card code-entry");
        let title = text_el(doc, "h2", "card-title", say::CODE_TITLE);
        let title_id = unique_id("code-title");
        attr(&title, "id", &title_id);
        attr(&root, "aria-labelledby", &title_id);
        append(&root, &title);
        append(&root, &text_el(doc, "p", "intro", say::CODE_INTRO));

        let form = el(doc, "form", "stack");
        attr(&form, "novalidate", "");
        // A fieldset is a group named by its legend, and disabling it
        // disables every box at once.
        let fieldset: HtmlFieldSetElement = el(doc, "fieldset", "code-group").unchecked_into();
        append(
            &fieldset,
            &text_el(doc, "legend", "field-label", say::CODE_GROUP),
        );
        let row = el(doc, "div", "digits");
        let mut boxes = Vec::with_capacity(CODE_LEN);
        for half in 0..2 {
            let group = el(doc, "div", "digit-group");
            for n in 0..3 {
                let i = half * 3 + n;
                let input: HtmlInputElement = el(doc, "input", "digit").unchecked_into();
                attr(&input, "type", "text");
                attr(&input, "inputmode", "numeric");
                attr(&input, "pattern", "[0-9]*");
                attr(&input, "autocomplete", "off");
                attr(&input, "spellcheck", "false");
                let label = ["Digit ", &(i + 1).to_string(), " of 6"].concat();
                attr(&input, "aria-label", &label);
                append(&group, &input);
                boxes.push(input);
            }
            append(&row, &group);
            if half == 0 {
                let sep = text_el(doc, "span", "digit-sep", "\u{2013}");
                attr(&sep, "aria-hidden", "true");
                append(&row, &sep);
            }
        }
        append(&fieldset, &row);
        append(&form, &fieldset);

        let alert = el(doc, "div", "alert");
        attr(&alert, "role", "alert");
        append(&form, &alert);
        // The lock's countdown is not a live region: it changes every second
        // and the alert above has already said how long the wait is.
        let lock_note = el(doc, "p", "lock-note");
        attr(&lock_note, "hidden", "");
        append(&form, &lock_note);

        let actions = el(doc, "div", "actions");
        let connect: HtmlButtonElement =
            text_el(doc, "button", "button primary", say::CONNECT).unchecked_into();
        attr(&connect, "type", "submit");
        append(&actions, &connect);
        let status = el(doc, "p", "note busy-note");
        attr(&status, "role", "status");
        append(&actions, &status);
        append(&form, &actions);
        append(&root, &form);

        let parts = Rc::new(Parts {
            boxes,
            fieldset,
            connect,
            alert,
            status,
            lock_note,
            on_submit,
            lock: RefCell::new(None),
        });

        let mut listeners = Vec::with_capacity(1 + 4 * CODE_LEN);
        let p = parts.clone();
        listeners.push(Listener::new(&form, "submit", move |e: Event| {
            e.prevent_default();
            p.submit_or_point_at_gap();
        }));
        for (i, input) in parts.boxes.iter().enumerate() {
            let p = parts.clone();
            listeners.push(Listener::new(input, "keydown", move |e: Event| {
                if let Some(key) = e.dyn_ref::<KeyboardEvent>() {
                    p.on_key(i, key);
                }
            }));
            let p = parts.clone();
            listeners.push(Listener::new(input, "input", move |e: Event| {
                p.on_input(i, e.dyn_ref::<InputEvent>().and_then(InputEvent::data));
            }));
            let p = parts.clone();
            listeners.push(Listener::new(input, "paste", move |e: Event| {
                e.prevent_default();
                let text = e
                    .dyn_ref::<ClipboardEvent>()
                    .and_then(ClipboardEvent::clipboard_data)
                    .and_then(|data| data.get_data("text").ok())
                    .unwrap_or_default();
                p.on_paste(i, &text);
            }));
            // Selected on focus, so whatever is typed replaces the digit.
            let b = input.clone();
            listeners.push(Listener::new(input, "focus", move |_| b.select()));
        }

        CodeEntry {
            root,
            parts,
            _listeners: listeners,
        }
    }

    pub fn element(&self) -> &Element {
        &self.root
    }

    pub fn focus_first(&self) {
        self.parts.focus(0);
    }

    /// While the code is being redeemed: boxes and button disabled, and a
    /// "Connecting…" status.
    pub fn set_busy(&self, busy: bool) {
        let p = &self.parts;
        p.set_enabled(!busy);
        p.status
            .set_text_content(if busy { Some(say::CONNECTING) } else { None });
        if busy {
            p.alert.set_text_content(None);
            attr(&self.root, "aria-busy", "true");
        } else {
            let _ = self.root.remove_attribute("aria-busy");
        }
    }

    /// The broker does not know the code: says so, empties the boxes and
    /// puts the cursor in the first one for another try.
    pub fn reject(&self, message: &str) {
        self.set_busy(false);
        self.parts.clear();
        self.parts.alert.set_text_content(Some(message));
        self.parts.focus(0);
    }

    /// The attempt failed for a reason unrelated to the code (the broker is
    /// unreachable): the digits stay, so Connect tries them again.
    pub fn fail(&self, message: &str) {
        self.set_busy(false);
        self.parts.alert.set_text_content(Some(message));
        dom::focus(&self.parts.connect);
    }

    /// Too many wrong codes: the boxes stay disabled for `secs` seconds,
    /// with a countdown, then come back by themselves.
    pub fn lock(&self, secs: u32) {
        self.set_busy(false);
        let p = &self.parts;
        p.clear();
        p.set_enabled(false);
        p.alert.set_text_content(Some(&text::locked(secs)));
        let until = js_sys::Date::now() + f64::from(secs) * 1000.0;
        p.lock_note.set_text_content(Some(&text::unlocks_in(secs)));
        let _ = p.lock_note.remove_attribute("hidden");
        let weak: Weak<Parts> = Rc::downgrade(&self.parts);
        let tick = {
            let weak = weak.clone();
            Interval::new(1000, move || {
                if let Some(p) = weak.upgrade() {
                    let left = ((until - js_sys::Date::now()) / 1000.0).ceil().max(0.0);
                    p.lock_note
                        .set_text_content(Some(&text::unlocks_in(left as u32)));
                }
            })
        };
        let end = Timeout::new(secs.saturating_mul(1000), move || {
            if let Some(p) = weak.upgrade() {
                p.unlock();
            }
        });
        *p.lock.borrow_mut() = Some((tick, end));
    }
}

impl Parts {
    fn focus(&self, i: usize) {
        if let Some(b) = self.boxes.get(i.min(CODE_LEN - 1)) {
            dom::focus(b);
        }
    }

    fn set_enabled(&self, enabled: bool) {
        self.fieldset.set_disabled(!enabled);
        self.connect.set_disabled(!enabled);
    }

    fn clear(&self) {
        for b in &self.boxes {
            b.set_value("");
        }
    }

    fn unlock(&self) {
        // Dropping the timers from inside one of their callbacks is fine:
        // wasm-bindgen frees a closure only once its last call has returned.
        self.lock.borrow_mut().take();
        self.lock_note.set_text_content(None);
        let _ = self.lock_note.set_attribute("hidden", "");
        self.alert.set_text_content(None);
        self.set_enabled(true);
        self.status.set_text_content(Some(say::UNLOCKED));
        self.focus(0);
    }

    /// The six digits, if every box holds one.
    fn code(&self) -> Option<String> {
        let code: String = self.boxes.iter().map(HtmlInputElement::value).collect();
        agent_assist_protocol::is_valid_code(&code).then_some(code)
    }

    fn submit_or_point_at_gap(&self) {
        if self.fieldset.disabled() {
            return;
        }
        match self.code() {
            Some(code) => (self.on_submit)(code),
            None => {
                self.alert.set_text_content(Some(say::CODE_INCOMPLETE));
                let gap = self.boxes.iter().position(|b| b.value().is_empty());
                self.focus(gap.unwrap_or(0));
            }
        }
    }

    /// Writes `digits` into the boxes from `from` on (from the first if it
    /// is a whole code), moves to the box after the last one written, and
    /// submits if that completed the code.
    fn fill_from(&self, from: usize, digits: &str) {
        let from = if digits.len() == CODE_LEN { 0 } else { from };
        let mut next = from;
        for (b, d) in self.boxes[from..].iter().zip(digits.chars()) {
            b.set_value(d.encode_utf8(&mut [0; 4]));
            next += 1;
        }
        self.alert.set_text_content(None);
        if let Some(code) = self.code() {
            // Focus goes to the last box, where Backspace starts a correction.
            self.focus(CODE_LEN - 1);
            (self.on_submit)(code);
        } else {
            self.focus(next);
        }
    }

    fn on_key(&self, i: usize, e: &KeyboardEvent) {
        if e.ctrl_key() || e.meta_key() || e.alt_key() || e.is_composing() {
            // Shortcuts (paste, select all) and IME input keep their defaults.
            return;
        }
        let key = e.key();
        let here = &self.boxes[i];
        match key.as_str() {
            "Backspace" => {
                e.prevent_default();
                if !here.value().is_empty() {
                    here.set_value("");
                } else if i > 0 {
                    self.boxes[i - 1].set_value("");
                    self.focus(i - 1);
                }
                self.alert.set_text_content(None);
            }
            "Delete" => {
                e.prevent_default();
                here.set_value("");
            }
            "ArrowLeft" | "ArrowUp" => {
                e.prevent_default();
                self.focus(i.saturating_sub(1));
            }
            "ArrowRight" | "ArrowDown" => {
                e.prevent_default();
                self.focus(i + 1);
            }
            "Home" => {
                e.prevent_default();
                self.focus(0);
            }
            "End" => {
                e.prevent_default();
                self.focus(CODE_LEN - 1);
            }
            k if k.chars().count() == 1 => {
                // A printable character: a digit is taken, the rest ignored.
                e.prevent_default();
                if k.as_bytes()[0].is_ascii_digit() {
                    self.fill_from(i, k);
                }
            }
            // Tab, Enter (submits the form), Escape…: the browser's defaults.
            _ => {}
        }
    }

    fn on_input(&self, i: usize, data: Option<String>) {
        let here = &self.boxes[i];
        let typed: String = data
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let in_box: String = here.value().chars().filter(char::is_ascii_digit).collect();
        if !typed.is_empty() {
            self.fill_from(i, &typed);
        } else if in_box.len() > 1 {
            // Autofill and the like: a value without "typed" data.
            self.fill_from(i, &in_box);
        } else {
            // A deletion, or a non-digit that got in: keep only a digit.
            here.set_value(&in_box);
        }
    }

    fn on_paste(&self, i: usize, text: &str) {
        match read_paste(text) {
            Paste::Whole(digits) | Paste::Part(digits) => self.fill_from(i, &digits),
            Paste::Invalid => {
                self.alert.set_text_content(Some(say::BAD_PASTE));
            }
        }
    }
}

impl Drop for CodeEntry {
    fn drop(&mut self) {
        self.parts.lock.borrow_mut().take();
        self.root.remove();
    }
}
