//! The account bar in the console's top bar: who is signed in, for which
//! site, and Sign out.

use crate::text::say;
use agent_assist_web::dom::{append, button, el, text_el, Listener};
use std::rc::Rc;
use web_sys::{Document, Element};

pub struct AccountBar {
    root: Element,
    _listeners: Vec<Listener>,
}

impl AccountBar {
    /// `who` is "Signed in as Dana · Lumen Home" (set as text: the name
    /// comes from the credential, which a site's CRM may have minted).
    pub fn new(doc: &Document, who: &str, on_sign_out: Rc<dyn Fn(())>) -> AccountBar {
        let root = el(doc, "div", "account");
        append(&root, &text_el(doc, "p", "who", who));
        let button = button(doc, "button ghost", say::SIGN_OUT);
        append(&root, &button);
        let listeners = vec![Listener::new(&button, "click", move |_| on_sign_out(()))];
        AccountBar {
            root,
            _listeners: listeners,
        }
    }

    pub fn element(&self) -> &Element {
        &self.root
    }
}

impl Drop for AccountBar {
    fn drop(&mut self) {
        self.root.remove();
    }
}
