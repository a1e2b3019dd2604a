//! The frame of the widget's modal: the close button, the title, the
//! notices, the privacy link, a panel for what the modal shows, a polite
//! status region and Cancel; and the panel's placeholder and messages.
//!
//! The boot module opens this frame the moment the visitor clicks, with the
//! placeholder (or, if the rest of the widget cannot be fetched, the
//! "couldn't reach" message); the widget module's code modal then takes the
//! open dialog over ([`Shell::find`]). One builder for both, so nothing
//! changes to the eye or to assistive technology at the hand-over.

use crate::i18n::{Strings, Text};
use agent_assist_web::dom::{append, attr, button, el, text_el};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlDialogElement, ShadowRoot};

pub struct Shell {
    pub dialog: HtmlDialogElement,
    pub panel: Element,
    pub status: Element,
    pub close_button: Element,
    pub cancel_button: Element,
}

impl Shell {
    /// Builds the dialog (closed) at the end of `root`, with `notices` and
    /// the privacy link if given.
    pub fn new(
        doc: &Document,
        root: &ShadowRoot,
        strings: &Strings,
        notices: &[String],
        privacy_url: Option<&str>,
    ) -> Shell {
        let dialog: HtmlDialogElement = el(doc, "dialog", "").unchecked_into();
        attr(&dialog, "aria-labelledby", "aa-title");
        attr(&dialog, "part", "dialog");

        let close_button = button(doc, "close", "\u{00d7}");
        attr(&close_button, "aria-label", strings.get(Text::Close));
        append(&dialog, &close_button);

        let title = text_el(doc, "h2", "", strings.get(Text::Title));
        attr(&title, "id", "aa-title");
        append(&dialog, &title);

        if !notices.is_empty() {
            let list = el(doc, "ul", "notices");
            for notice in notices {
                append(&list, &text_el(doc, "li", "", notice));
            }
            append(&dialog, &list);
        }

        if let Some(url) = privacy_url {
            let p = text_el(doc, "p", "privacy", strings.get(Text::PrivacyIntro));
            let _ = p.append_with_str_1(" ");
            let link = text_el(doc, "a", "", strings.get(Text::PrivacyLink));
            attr(&link, "href", url);
            attr(&link, "target", "_blank");
            attr(&link, "rel", "noopener noreferrer");
            append(&p, &link);
            let _ = p.append_with_str_1(".");
            append(&dialog, &p);
        }

        let panel = el(doc, "div", "panel");
        append(&dialog, &panel);

        // Announces state changes (code ready, expired, error) politely,
        // once each, instead of making the ticking countdown a live region.
        let status = el(doc, "div", "sr");
        attr(&status, "role", "status");
        append(&dialog, &status);

        let actions = el(doc, "div", "actions");
        let cancel_button = button(doc, "button secondary cancel", strings.get(Text::Cancel));
        append(&actions, &cancel_button);
        append(&dialog, &actions);

        let _ = root.append_child(&dialog);
        Shell {
            dialog,
            panel,
            status,
            close_button,
            cancel_button,
        }
    }

    /// The parts of a frame [`Shell::new`] built (the boot module's), if
    /// `dialog` is one.
    pub fn find(dialog: HtmlDialogElement) -> Option<Shell> {
        let part = |selector: &str| dialog.query_selector(selector).ok().flatten();
        Some(Shell {
            panel: part(".panel")?,
            status: part("[role=status]")?,
            close_button: part(".close")?,
            cancel_button: part(".cancel")?,
            dialog,
        })
    }

    /// Empties the panel for what it shows next.
    pub fn clear_panel(&self) {
        self.panel.set_text_content(None);
        let _ = self.panel.remove_attribute("aria-busy");
    }

    /// The placeholder shown while the code is on its way: the same size as
    /// the code, so nothing moves when it arrives.
    pub fn show_loading(&self, doc: &Document, strings: &Strings) {
        self.clear_panel();
        append(
            &self.panel,
            &text_el(doc, "p", "label", strings.get(Text::CodeLabel)),
        );
        let skeleton = el(doc, "div", "skeleton");
        attr(&skeleton, "aria-hidden", "true");
        append(&self.panel, &skeleton);
        append(&self.panel, &text_el(doc, "p", "expiry", "\u{00a0}"));
        attr(&self.panel, "aria-busy", "true");
        self.announce(strings.get(Text::Loading));
    }

    /// A message in the panel (an error in the danger colour), announced,
    /// with `action` as a button under it if given; returns that button.
    pub fn show_message(
        &self,
        doc: &Document,
        message: &str,
        is_error: bool,
        action: Option<&str>,
    ) -> Option<Element> {
        self.clear_panel();
        let class = if is_error { "message error" } else { "message" };
        append(&self.panel, &text_el(doc, "p", class, message));
        self.announce(message);
        let button = button(doc, "button primary retry", action?);
        append(&self.panel, &button);
        Some(button)
    }

    pub fn announce(&self, text: &str) {
        self.status.set_text_content(Some(text));
    }
}
