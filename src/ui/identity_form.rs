//! The identity form (`auth: "form"` / `"optional-form"`, seed 003): name
//! and email, asked inside the code modal before the code is made, with
//! "Continue as guest" when the site makes it optional.
//!
//! Checked on submit (Enter in either field submits). A field at fault gets
//! its message right under it, `aria-invalid` and `aria-describedby`
//! pointing at the message, and the first such field gets focus, so a
//! screen reader reads the label and the message together. A message line
//! is always reserved under each field, so errors never move the form.

use crate::i18n::{Strings, Text};
use crate::identity::check_form;
use agent_assist_protocol::{VisitorInfo, MAX_TEXT_FIELD};
use agent_assist_web::dom::{self, append, attr, button, el, text_el, Listener};
use std::rc::Rc;
use web_sys::{Document, Element, Event};

/// What the visitor chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormAction {
    /// A valid name and email, trimmed.
    Submit(VisitorInfo),
    /// "Continue as guest": a code without visitor data.
    Guest,
}

pub type OnForm = Rc<dyn Fn(FormAction)>;

/// One labelled input and the line for its message.
#[derive(Clone)]
struct Field {
    input: Element,
    error: Element,
}

impl Field {
    fn new(doc: &Document, form: &Element, id: &str, label: &str, kind: &str) -> Field {
        let wrap = el(doc, "div", "field");
        let error_id = [id, "-error"].concat();
        let label_el = text_el(doc, "label", "", label);
        attr(&label_el, "for", id);
        let input = el(doc, "input", "input");
        attr(&input, "id", id);
        attr(&input, "name", kind);
        attr(
            &input,
            "type",
            if kind == "email" { "email" } else { "text" },
        );
        // Lets the browser (and password managers) fill in what it knows.
        attr(&input, "autocomplete", kind);
        attr(&input, "required", "");
        attr(
            &input,
            "maxlength",
            &crate::code::decimal(MAX_TEXT_FIELD as u32),
        );
        attr(&input, "aria-describedby", &error_id);
        if kind == "email" {
            attr(&input, "spellcheck", "false");
        }
        let error = el(doc, "p", "field-error");
        attr(&error, "id", &error_id);
        append(&wrap, &label_el);
        append(&wrap, &input);
        append(&wrap, &error);
        append(form, &wrap);
        Field { input, error }
    }

    /// Shows `message` under the field, or clears it.
    fn mark(&self, message: Option<&str>) {
        self.error.set_text_content(message);
        match message {
            Some(_) => attr(&self.input, "aria-invalid", "true"),
            None => {
                let _ = self.input.remove_attribute("aria-invalid");
            }
        }
    }
}

pub struct IdentityForm {
    form: Element,
    _listeners: Vec<Listener>,
}

impl IdentityForm {
    /// Builds the form into `parent`. `prefill` is what the visitor typed
    /// last time the modal was open; `status` is the modal's live region.
    pub fn new(
        doc: &Document,
        parent: &Element,
        strings: &Strings,
        guest: bool,
        prefill: Option<&VisitorInfo>,
        status: &Element,
        on_form: OnForm,
    ) -> IdentityForm {
        let form = el(doc, "form", "form");
        // Our own checks and messages replace the browser's bubbles, which
        // are not translated with the widget and vanish before being read.
        attr(&form, "novalidate", "");
        attr(&form, "part", "form");
        append(
            &form,
            &text_el(doc, "p", "form-intro", strings.get(Text::FormIntro)),
        );
        let name = Field::new(doc, &form, "aa-name", strings.get(Text::NameLabel), "name");
        let email = Field::new(
            doc,
            &form,
            "aa-email",
            strings.get(Text::EmailLabel),
            "email",
        );
        if let Some(info) = prefill {
            dom::set_value(&name.input, info.name.as_deref().unwrap_or_default());
            dom::set_value(&email.input, info.email.as_deref().unwrap_or_default());
        }

        let actions = el(doc, "div", "form-actions");
        let submit = text_el(
            doc,
            "button",
            "button primary submit",
            strings.get(Text::Submit),
        );
        attr(&submit, "type", "submit");
        append(&actions, &submit);
        let mut listeners = Vec::new();
        if guest {
            let button = button(doc, "button secondary guest", strings.get(Text::Guest));
            append(&actions, &button);
            let on_form = on_form.clone();
            listeners.push(Listener::new(&button, "click", move |_| {
                on_form(FormAction::Guest)
            }));
        }
        append(&form, &actions);
        append(parent, &form);

        let strings = strings.clone();
        let message = move |t: Option<Text>| t.map(|t| strings.get(t).to_owned());
        let status = status.clone();
        let fields = (name, email);
        listeners.push(Listener::new(&form, "submit", move |e: Event| {
            e.prevent_default();
            let (name, email) = &fields;
            let (name_value, email_value) = (dom::value(&name.input), dom::value(&email.input));
            let (name_error, email_error) = check_form(&name_value, &email_value);
            if name_error.is_none() && email_error.is_none() {
                // The form gives way to the code at once; earlier messages
                // stay until then, so nothing moves before it does.
                return on_form(FormAction::Submit(VisitorInfo {
                    name: Some(name_value.trim_ascii().to_owned()),
                    email: Some(email_value.trim_ascii().to_owned()),
                }));
            }
            let (name_error, email_error) = (message(name_error), message(email_error));
            name.mark(name_error.as_deref());
            email.mark(email_error.as_deref());
            let (field, text) = if name_error.is_some() {
                (name, name_error)
            } else {
                (email, email_error)
            };
            // Moving focus makes the field's label and message be read. A
            // field that already has focus is not read again, so its message
            // goes to the live region instead.
            if field.input.matches(":focus").unwrap_or(false) {
                status.set_text_content(text.as_deref());
            }
            dom::focus(&field.input);
        }));

        IdentityForm {
            form,
            _listeners: listeners,
        }
    }
}

impl Drop for IdentityForm {
    fn drop(&mut self) {
        self.form.remove();
    }
}
