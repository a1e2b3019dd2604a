//! The boot module's modal: opened the moment the visitor clicks, before the
//! rest of the widget is here, so the click is answered at once whatever
//! the network. It is the code modal's frame with its placeholder; the
//! widget module takes it over open when it arrives (`CodeModal::adopt`).
//!
//! If the rest of the widget cannot be fetched (the service is down, the
//! visitor is offline) it shows the same plain-language message and "Try
//! again" that the code modal shows when the broker cannot be reached, so
//! the visitor sees one behaviour whichever part failed.

use super::shell::Shell;
use super::trap_tab;
use crate::i18n::{Strings, Text};
use agent_assist_web::dom::{self, Listener};
use std::rc::Rc;
use web_sys::{Document, Event, ShadowRoot};

pub struct Pending {
    shell: Shell,
    /// "Try again", while the panel shows the error.
    retry: Option<Listener>,
    _listeners: Vec<Listener>,
    /// False once [`Pending::release`] handed the dialog on.
    owned: bool,
}

impl Pending {
    /// Opens the modal with the placeholder. `on_close` runs on Cancel, the
    /// close button and Esc.
    pub fn open(
        doc: &Document,
        root: &ShadowRoot,
        strings: &Strings,
        privacy_url: Option<&str>,
        on_close: Rc<dyn Fn()>,
    ) -> Pending {
        let shell = Shell::new(doc, root, strings, &strings.notices, privacy_url);
        let closer = || {
            let f = on_close.clone();
            move |_: Event| f()
        };
        let on_esc = on_close.clone();
        let listeners = vec![
            Listener::new(&shell.close_button, "click", closer()),
            Listener::new(&shell.cancel_button, "click", closer()),
            Listener::new(&shell.dialog, "cancel", move |e: Event| {
                e.prevent_default();
                on_esc();
            }),
            trap_tab(
                &shell.dialog,
                root,
                &shell.close_button,
                &shell.cancel_button,
            ),
        ];
        shell.show_loading(doc, strings);
        let _ = shell.dialog.show_modal();
        dom::focus(&shell.close_button);
        Pending {
            shell,
            retry: None,
            _listeners: listeners,
            owned: true,
        }
    }

    /// Back to the placeholder ("Try again" was chosen).
    pub fn loading(&mut self, doc: &Document, strings: &Strings) {
        self.retry = None;
        self.shell.show_loading(doc, strings);
    }

    /// The rest of the widget could not be fetched: the message, and "Try
    /// again" (which runs `on_retry`) with focus on it.
    pub fn fail(&mut self, doc: &Document, strings: &Strings, on_retry: Rc<dyn Fn()>) {
        let message = strings.get(Text::ErrorNetwork);
        let retry = self
            .shell
            .show_message(doc, message, true, Some(strings.get(Text::Retry)));
        self.retry = retry.map(|button| {
            dom::focus(&button);
            Listener::new(&button, "click", move |_| on_retry())
        });
    }

    /// Drops this module's listeners and leaves the dialog open for the
    /// widget module, which takes it over.
    pub fn release(mut self) {
        self.owned = false;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.owned {
            self.shell.dialog.close();
            self.shell.dialog.remove();
        }
    }
}
