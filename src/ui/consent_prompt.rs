//! The consent prompt: shown when an agent has redeemed the visitor's code,
//! separate from the code modal (seed 000: the two prompts are distinct),
//! naming the agent and asking Allow / Deny.
//!
//! A modal `<dialog>` like the code modal. Esc counts as Deny: a visitor who
//! dismisses the question has not agreed to anything.

use super::trap_tab;
use crate::i18n::{fill, Strings, Text};
use agent_assist_web::dom::{self, append, attr, button, el, text_el, Listener};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, Event, HtmlDialogElement, ShadowRoot};

pub struct ConsentPrompt {
    dialog: HtmlDialogElement,
    allow: Element,
    deny: Element,
    error: Element,
    _listeners: Vec<Listener>,
}

impl ConsentPrompt {
    /// `on_answer(true)` for Allow, `on_answer(false)` for Deny or Esc.
    pub fn new(
        doc: &Document,
        root: &ShadowRoot,
        strings: &Strings,
        agent: &str,
        on_answer: Rc<dyn Fn(bool)>,
    ) -> ConsentPrompt {
        let dialog: HtmlDialogElement = el(doc, "dialog", "consent").unchecked_into();
        attr(&dialog, "aria-labelledby", "aa-consent-title");
        attr(&dialog, "aria-describedby", "aa-consent-text");
        attr(&dialog, "part", "consent");

        // The agent's name is untrusted text: it only ever goes in as text.
        let title = text_el(doc, "h2", "", &fill(strings.get(Text::ConsentTitle), agent));
        attr(&title, "id", "aa-consent-title");
        // Focus starts on the question itself, not on either answer, so
        // neither is chosen by a stray Enter.
        attr(&title, "tabindex", "-1");
        append(&dialog, &title);
        let text = text_el(
            doc,
            "p",
            "consent-text",
            &fill(strings.get(Text::ConsentText), agent),
        );
        attr(&text, "id", "aa-consent-text");
        append(&dialog, &text);
        let error = el(doc, "p", "message error");
        attr(&error, "role", "alert");
        append(&dialog, &error);

        let actions = el(doc, "div", "actions");
        let deny = button(doc, "button secondary deny", strings.get(Text::Deny));
        let allow = button(doc, "button primary allow", strings.get(Text::Allow));
        for b in [&deny, &allow] {
            append(&actions, b);
        }
        append(&dialog, &actions);
        let _ = root.append_child(&dialog);

        let answer = |value: bool| {
            let on_answer = on_answer.clone();
            move |_: Event| on_answer(value)
        };
        let mut listeners = vec![
            Listener::new(&allow, "click", answer(true)),
            Listener::new(&deny, "click", answer(false)),
        ];
        let on_esc = on_answer.clone();
        listeners.push(Listener::new(&dialog, "cancel", move |e: Event| {
            e.prevent_default();
            on_esc(false);
        }));
        // Keep Tab inside the prompt: Deny and Allow are its only stops.
        listeners.push(trap_tab(&dialog, root, &deny, &allow));

        let _ = dialog.show_modal();
        dom::focus(&title);
        ConsentPrompt {
            dialog,
            allow,
            deny,
            error,
            _listeners: listeners,
        }
    }

    /// While the answer is on its way: both buttons disabled.
    pub fn set_busy(&self, busy: bool) {
        for b in [&self.allow, &self.deny] {
            let _ = b.toggle_attribute_with_force("disabled", busy);
        }
        if busy {
            self.error.set_text_content(None);
        }
    }

    /// The answer could not be sent; the visitor can answer again.
    pub fn show_error(&self, text: &str) {
        self.set_busy(false);
        self.error.set_text_content(Some(text));
    }

    /// Re-shows the prompt after the widget moved in the page (moving an
    /// element takes an open modal dialog out of the top layer).
    pub fn reopen(&self) {
        if self.dialog.open() {
            self.dialog.close();
            let _ = self.dialog.show_modal();
        }
    }
}

impl Drop for ConsentPrompt {
    fn drop(&mut self) {
        self.dialog.close();
        self.dialog.remove();
    }
}
