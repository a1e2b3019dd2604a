//! The share-screen modal: title, notices, privacy link, the code (or a
//! placeholder, the identity form, the expired notice, or an error), the
//! time left, and Cancel.
//!
//! It is a native `<dialog>` opened with `showModal()`: it sits in the top
//! layer (no z-index fights with the host page), the rest of the page is
//! inert, and Esc raises `cancel`. Tab is additionally wrapped inside it so
//! keyboard focus never reaches the browser chrome in the middle of the flow.

use super::shell::Shell;
use super::trap_tab;
use crate::code;
use crate::i18n::{Strings, Text};
use crate::ui::identity_form::{IdentityForm, OnForm};
use agent_assist_protocol::VisitorInfo;
use agent_assist_web::dom::{self, append, attr, el, text_el, Listener};
use gloo_timers::callback::{Interval, Timeout};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Document, Event, HtmlElement, ShadowRoot};

/// What the visitor asked the modal for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Cancel, the close button or Esc: withdraw the code and close.
    Cancel,
    /// "Try again" after an error, or "Get a new code" after expiry.
    Retry,
}

pub type OnAction = Rc<dyn Fn(Action)>;

/// How long after the dialog opens its first status is said (see
/// [`CodeModal::announce_after_open`]): enough for the browser to put the
/// dialog in the accessibility tree and for a screen reader to read its name.
const ANNOUNCE_DELAY_MS: u32 = 150;

pub struct CodeModal {
    doc: Document,
    strings: Strings,
    on_action: OnAction,
    /// The dialog and its parts.
    shell: Shell,
    /// Listeners of whatever the panel currently shows (Retry buttons, copy).
    panel_listeners: Vec<Listener>,
    /// Updates the countdown once a second while a code is shown.
    ticker: Option<Interval>,
    /// Says the status again a moment after the dialog opened with it.
    announce_later: Option<Timeout>,
    /// The identity form, while the panel shows it.
    form: Option<IdentityForm>,
    _listeners: Vec<Listener>,
}

impl CodeModal {
    pub fn new(
        doc: &Document,
        root: &ShadowRoot,
        strings: &Strings,
        privacy_url: Option<&str>,
        on_action: OnAction,
    ) -> CodeModal {
        let shell = Shell::new(doc, root, strings, &strings.notices, privacy_url);
        CodeModal::with_shell(doc, root, shell, strings, on_action)
    }

    /// Takes over the boot module's modal, open with its placeholder, if
    /// `root` has one; the visitor sees no change.
    pub fn adopt(
        doc: &Document,
        root: &ShadowRoot,
        strings: &Strings,
        on_action: OnAction,
    ) -> Option<CodeModal> {
        let dialog = root.query_selector("dialog[open]").ok().flatten()?;
        let shell = Shell::find(dialog.unchecked_into())?;
        Some(CodeModal::with_shell(doc, root, shell, strings, on_action))
    }

    fn with_shell(
        doc: &Document,
        root: &ShadowRoot,
        shell: Shell,
        strings: &Strings,
        on_action: OnAction,
    ) -> CodeModal {
        let cancel = |on_action: &OnAction| {
            let on_action = on_action.clone();
            move |_: Event| on_action(Action::Cancel)
        };
        let mut listeners = vec![
            Listener::new(&shell.close_button, "click", cancel(&on_action)),
            Listener::new(&shell.cancel_button, "click", cancel(&on_action)),
        ];
        // Esc: the dialog would close itself; we close it our way instead so
        // the code is withdrawn at the broker too.
        let on_esc = on_action.clone();
        listeners.push(Listener::new(&shell.dialog, "cancel", move |e: Event| {
            e.prevent_default();
            on_esc(Action::Cancel);
        }));
        listeners.push(trap_tab(
            &shell.dialog,
            root,
            &shell.close_button,
            &shell.cancel_button,
        ));

        CodeModal {
            doc: doc.clone(),
            strings: strings.clone(),
            on_action,
            shell,
            panel_listeners: Vec::new(),
            ticker: None,
            announce_later: None,
            form: None,
            _listeners: listeners,
        }
    }

    pub fn is_open(&self) -> bool {
        self.shell.dialog.open()
    }

    /// False once the page removed the dialog (or the widget) from the page.
    pub fn is_in_page(&self) -> bool {
        self.shell.dialog.is_connected()
    }

    pub fn open(&self) {
        if !self.shell.dialog.open() {
            // showModal throws only if the dialog is disconnected or already
            // open as non-modal; neither happens to a mounted widget.
            let _ = self.shell.dialog.show_modal();
        }
        dom::focus(&self.shell.close_button);
    }

    /// Re-shows the modal after the widget moved in the page: a moved
    /// dialog leaves the top layer and stays open only as a plain element.
    pub fn reopen(&self) {
        if self.shell.dialog.open() {
            self.shell.dialog.close();
            let _ = self.shell.dialog.show_modal();
        }
    }

    pub fn close(&mut self) {
        self.ticker = None;
        self.announce_later = None;
        self.shell.dialog.close();
    }

    /// The identity form (`guest` adds "Continue as guest"), filled with
    /// what the visitor typed last time, if anything.
    pub fn show_form(&mut self, guest: bool, prefill: Option<&VisitorInfo>, on_form: OnForm) {
        self.reset_panel();
        dom::set_style(&self.shell.panel, "min-height", "");
        self.form = Some(IdentityForm::new(
            &self.doc,
            &self.shell.panel,
            &self.strings,
            guest,
            prefill,
            &self.shell.status,
            on_form,
        ));
        // The status region still says what the last visit to the modal
        // ended with; the form speaks for itself.
        self.announce("");
    }

    /// The placeholder shown while the code is on its way: same size as the
    /// code, so nothing moves when it arrives.
    pub fn show_loading(&mut self) {
        if self.form.is_some() {
            // The form was taller than the code: the panel keeps its height
            // from here on, so the modal does not shrink and jump under the
            // visitor's pointer. CSSOM, not a style attribute: CSP-safe.
            if let Some(panel) = self.shell.panel.dyn_ref::<HtmlElement>() {
                let height = code::decimal(panel.offset_height().max(0) as u32);
                let height = [height.as_str(), "px"].concat();
                dom::set_style(&self.shell.panel, "min-height", &height);
            }
        }
        self.reset_panel();
        self.shell.show_loading(&self.doc, &self.strings);
    }

    /// Shows `code` and counts down to `deadline` (a `performance.now()` time).
    pub fn show_code(&mut self, code_text: &str, deadline: f64) {
        self.reset_panel();
        let doc = &self.doc;
        let label = text_el(doc, "p", "label", self.strings.get(Text::CodeLabel));
        attr(&label, "id", "aa-code-label");
        append(&self.shell.panel, &label);

        let code_el = el(doc, "p", "code");
        attr(&code_el, "part", "code");
        attr(&code_el, "aria-labelledby", "aa-code-label");
        let spoken = code::spoken(code_text);
        // Read digit by digit by screen readers; the visible groups are
        // hidden from them so the code is not read twice.
        append(&code_el, &text_el(doc, "span", "sr", &spoken));
        let (a, b) = code::groups(code_text);
        for group in [a, b] {
            let span = text_el(doc, "span", "", group);
            attr(&span, "aria-hidden", "true");
            append(&code_el, &span);
        }
        append(&self.shell.panel, &code_el);
        // Copying any part of the code puts exactly the six digits on the
        // clipboard, without the spoken form or the gap between groups.
        let digits = code::digits_only(code_text);
        self.panel_listeners
            .push(Listener::new(&code_el, "copy", move |e: Event| {
                if let Some(data) = e
                    .dyn_ref::<web_sys::ClipboardEvent>()
                    .and_then(|c| c.clipboard_data())
                {
                    if data.set_data("text/plain", &digits).is_ok() {
                        e.prevent_default();
                    }
                }
            }));

        let expiry = text_el(doc, "p", "expiry", self.strings.get(Text::ExpiresIn));
        let _ = expiry.append_with_str_1(" ");
        let time = el(doc, "span", "time");
        append(&expiry, &time);
        append(&self.shell.panel, &expiry);

        let tick = {
            let time = time.clone();
            move || {
                let left = code::seconds_left(deadline, now());
                time.set_text_content(Some(&code::countdown(left)));
            }
        };
        tick();
        self.ticker = Some(Interval::new(1000, tick));

        let mut said = String::from(self.strings.get(Text::CodeSpokenPrefix));
        said.push(' ');
        said.push_str(&spoken);
        said.push('.');
        self.announce(&said);
    }

    pub fn show_expired(&mut self) {
        self.show_message(
            self.strings.get(Text::Expired).to_owned(),
            false,
            Some(Text::NewCode),
        );
    }

    /// The broker could not confirm the visitor's identity (a missing,
    /// forged or expired token): trying again would not help, a reload
    /// (which gets the site a fresh token) may.
    pub fn show_identity_error(&mut self) {
        self.show_message(self.strings.get(Text::ErrorIdentity).to_owned(), true, None);
    }

    /// An error the visitor can do something about: "Try again".
    pub fn show_error(&mut self, network: bool) {
        let text = if network {
            Text::ErrorNetwork
        } else {
            Text::ErrorServer
        };
        self.show_message(self.strings.get(text).to_owned(), true, Some(Text::Retry));
    }

    /// The broker's creation limits refused the code: too many asked for
    /// in a short time. Try again stays, for after the wait.
    pub fn show_busy(&mut self) {
        self.show_message(
            self.strings.get(Text::ErrorBusy).to_owned(),
            true,
            Some(Text::Retry),
        );
    }

    fn show_message(&mut self, message: String, is_error: bool, button: Option<Text>) {
        self.reset_panel();
        let action = button.map(|b| self.strings.get(b));
        let Some(retry) = self
            .shell
            .show_message(&self.doc, &message, is_error, action)
        else {
            // Nothing to do here but close: keep keyboard users near Close.
            if self.is_open() {
                dom::focus(&self.shell.close_button);
            }
            return;
        };
        let on_action = self.on_action.clone();
        self.panel_listeners
            .push(Listener::new(&retry, "click", move |_| {
                on_action(Action::Retry)
            }));
        // Keep keyboard users where the next step is.
        if self.is_open() {
            dom::focus(&retry);
        }
    }

    /// The dialog opened with its status already filled in (the answer came
    /// within the widget's open grace): a live region is read out when it changes,
    /// not when it appears, so the status is emptied and said again once the
    /// dialog is on screen.
    pub fn announce_after_open(&mut self) {
        let status = self.shell.status.clone();
        let text = status.text_content().unwrap_or_default();
        status.set_text_content(None);
        self.announce_later = Some(Timeout::new(ANNOUNCE_DELAY_MS, move || {
            status.set_text_content(Some(&text));
        }));
    }

    fn reset_panel(&mut self) {
        self.ticker = None;
        self.announce_later = None;
        self.form = None;
        self.panel_listeners.clear();
        self.shell.clear_panel();
    }

    fn announce(&self, text: &str) {
        self.shell.announce(text);
    }
}

impl Drop for CodeModal {
    fn drop(&mut self) {
        self.shell.dialog.close();
        self.shell.dialog.remove();
    }
}

/// `performance.now()`: monotonic, so a clock change on the device cannot
/// make the countdown jump.
pub fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}
