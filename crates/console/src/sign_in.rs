//! The sign-in card: one labelled password field for the agent's token
//! (an API token or a JWT, the console does not care which), a Sign in
//! button, and an alert region for what went wrong.
use crate::text::say;
use crate::unique_id;
use agent_assist_web::dom::{self, append, attr, el, text_el, Listener};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, Event, HtmlButtonElement, HtmlInputElement};

pub struct SignIn {
    root: Element,
    input: HtmlInputElement,
    button: HtmlButtonElement,
    alert: Element,
    status: Element,
    _listeners: Vec<Listener>,
}

impl SignIn {
    /// `on_submit` gets the trimmed token; an empty field is refused here.
    pub fn new(doc: &Document, on_submit: Rc<dyn Fn(String)>) -> SignIn {
        let root = el(doc, "section", "card sign-in");
        let title = text_el(doc, "h2", "card-title", say::SIGN_IN_TITLE);
        let title_id = unique_id("sign-in-title");
        attr(&title, "id", &title_id);
        attr(&root, "aria-labelledby", &title_id);
        append(&root, &title);
        append(&root, &text_el(doc, "p", "intro", say::SIGN_IN_INTRO));

        let form = el(doc, "form", "stack");
        // The browser's own validation bubbles would not match the console's
        // messages; the alert region below says what is wrong instead.
        attr(&form, "novalidate", "");
        // The label wraps the field, so it names it without an id.
        let label = el(doc, "label", "field");
        append(
            &label,
            &text_el(doc, "span", "field-label", say::TOKEN_LABEL),
        );
        let input: HtmlInputElement = el(doc, "input", "text-field").unchecked_into();
        attr(&input, "type", "password");
        attr(&input, "name", "token");
        // A token is pasted, not remembered: no password manager prompts.
        attr(&input, "autocomplete", "off");
        attr(&input, "spellcheck", "false");
        attr(&input, "autocapitalize", "off");
        append(&label, &input);
        append(&form, &label);

        let alert = el(doc, "div", "alert");
        attr(&alert, "role", "alert");
        append(&form, &alert);

        let button: HtmlButtonElement =
            text_el(doc, "button", "button primary", say::SIGN_IN).unchecked_into();
        attr(&button, "type", "submit");
        append(&form, &button);
        append(&root, &form);

        // Polite notes ("You signed out.") that are not errors.
        let status = el(doc, "p", "note");
        attr(&status, "role", "status");
        append(&root, &status);

        let listeners = {
            let (input, alert) = (input.clone(), alert.clone());
            vec![Listener::new(&form, "submit", move |e: Event| {
                e.prevent_default();
                let token = input.value().trim().to_owned();
                if token.is_empty() {
                    alert.set_text_content(Some(say::TOKEN_EMPTY));
                    dom::focus(&input);
                    return;
                }
                on_submit(token);
            })]
        };

        SignIn {
            root,
            input,
            button,
            alert,
            status,
            _listeners: listeners,
        }
    }

    pub fn element(&self) -> &Element {
        &self.root
    }

    pub fn focus(&self) {
        dom::focus(&self.input);
    }

    /// While the broker checks the token: field and button disabled, and
    /// the button says what is happening.
    pub fn set_busy(&self, busy: bool) {
        self.input.set_disabled(busy);
        self.button.set_disabled(busy);
        self.button
            .set_text_content(Some(if busy { say::SIGNING_IN } else { say::SIGN_IN }));
        if busy {
            self.alert.set_text_content(None);
            self.status.set_text_content(None);
        }
    }

    /// Shows `message` in the alert region and puts the cursor back in the
    /// field, its content selected so a new paste replaces it.
    pub fn show_error(&self, message: &str) {
        self.set_busy(false);
        self.alert.set_text_content(Some(message));
        self.focus();
        self.input.select();
    }

    pub fn show_note(&self, message: &str) {
        self.status.set_text_content(Some(message));
    }
}

impl Drop for SignIn {
    fn drop(&mut self) {
        self.root.remove();
    }
}
