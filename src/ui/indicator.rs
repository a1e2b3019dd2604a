//! The session indicator: while an agent sees the page, a small persistent
//! pill says so, with a button to stop. It is a `popover="manual"` element,
//! so it sits in the top layer above the page without making the page
//! inert, whatever the host page's stacking contexts and transforms.

use crate::i18n::{fill, Strings, Text};
use agent_assist_web::dom::{append, attr, button, el, text_el, Listener};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement, ShadowRoot};

pub struct Indicator {
    root: HtmlElement,
    label: Element,
    end: Element,
    _end_click: Listener,
}

impl Indicator {
    pub fn new(
        doc: &Document,
        shadow: &ShadowRoot,
        strings: &Strings,
        agent: &str,
        on_end: Rc<dyn Fn()>,
    ) -> Indicator {
        let root: HtmlElement = el(doc, "div", "indicator").unchecked_into();
        attr(&root, "role", "status");
        attr(&root, "part", "indicator");
        let _ = root.set_popover(Some("manual"));
        let dot = el(doc, "span", "dot");
        attr(&dot, "aria-hidden", "true");
        append(&root, &dot);
        let label = text_el(
            doc,
            "span",
            "indicator-label",
            &fill(strings.get(Text::Sharing), agent),
        );
        append(&root, &label);
        let end = button(doc, "button end", strings.get(Text::End));
        append(&root, &end);
        let _ = shadow.append_child(&root);
        let _ = root.show_popover();
        let end_click = Listener::new(&end, "click", move |_| on_end());
        Indicator {
            root,
            label,
            end,
            _end_click: end_click,
        }
    }

    /// The session is over: say why, without the button.
    pub fn show_ended(&self, text: &str) {
        self.root.set_class_name("indicator ended");
        self.label.set_text_content(Some(text));
        self.end.remove();
    }

    /// Says what the agent sees right now (the page, or that it is not shared).
    pub fn set_text(&self, text: &str) {
        self.label.set_text_content(Some(text));
    }

    pub fn set_busy(&self, busy: bool) {
        let _ = self.end.toggle_attribute_with_force("disabled", busy);
    }

    /// Re-shows it after the widget moved in the page.
    pub fn reopen(&self) {
        if self.root.is_connected() {
            let _ = self.root.show_popover();
        }
    }
}

impl Drop for Indicator {
    fn drop(&mut self) {
        self.root.remove();
    }
}
