//! The widget's UI components. Each owns its root element and its listeners
//! and timers, and removes them when dropped.
//!
//! - [`Host`]: the one `<agent-assist-widget>` element with an open shadow
//!   root and the widget's stylesheet; everything else lives inside it.
//! - [`footer_link::FooterLink`]: the "Agent Assist" link.
//! - [`code_modal::CodeModal`]: the share-screen modal with the code.
//! - [`identity_form::IdentityForm`]: name and email, inside the code modal,
//!   before the code is made (`auth: "form"` / `"optional-form"`).
//! - [`consent_prompt::ConsentPrompt`]: Allow / Deny when an agent asks in.
//! - [`indicator::Indicator`]: "Sharing this page with …" and Stop sharing.

pub mod code_modal;
pub mod consent_prompt;
pub mod footer_link;
pub mod identity_form;
pub mod indicator;

use crate::config::Theme;
use crate::error::Result;
use agent_assist_web::dom;
use web_sys::{CssStyleSheet, Document, Element, ShadowRoot, ShadowRootInit, ShadowRootMode};

const CSS: &str = include_str!("style.css");

/// The element the widget adds to the page, and its shadow root.
pub struct Host {
    pub element: Element,
    pub root: ShadowRoot,
}

impl Host {
    pub fn new(doc: &Document, theme: Theme, lang: &str) -> Result<Host> {
        let element = doc.create_element("agent-assist-widget")?;
        dom::attr(&element, "lang", lang);
        match theme {
            Theme::Auto => {}
            Theme::Light => dom::attr(&element, "data-theme", "light"),
            Theme::Dark => dom::attr(&element, "data-theme", "dark"),
        }
        let root = element.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?;
        // A constructable stylesheet needs no <style> element and no
        // 'unsafe-inline', so the widget works under a strict CSP.
        let sheet = CssStyleSheet::new()?;
        sheet.replace_sync(CSS)?;
        root.set_adopted_style_sheets(&js_sys::Array::of1(&sheet));
        Ok(Host { element, root })
    }

    /// Moves the widget into `parent`, as its last child.
    pub fn mount(&self, parent: &Element) -> Result<()> {
        parent.append_child(&self.element)?;
        Ok(())
    }

    pub fn is_mounted(&self) -> bool {
        self.element.is_connected()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.element.remove();
    }
}

/// Keeps Tab inside a modal dialog: Tab from `last` goes to `first`, Shift+Tab
/// from `first` to `last`, and either from anywhere that is not a control
/// (the dialog itself, a heading focused on purpose) enters at the matching
/// end. The page behind is inert anyway; this also keeps focus from the
/// browser's own toolbar in the middle of the flow.
pub fn trap_tab(
    dialog: &web_sys::Element,
    root: &ShadowRoot,
    first: &web_sys::Element,
    last: &web_sys::Element,
) -> dom::Listener {
    use wasm_bindgen::JsCast;
    let (first, last, root) = (first.clone(), last.clone(), root.clone());
    dom::Listener::new(dialog, "keydown", move |e: web_sys::Event| {
        let Some(key) = e.dyn_ref::<web_sys::KeyboardEvent>() else {
            return;
        };
        if key.key() != "Tab" {
            return;
        }
        let active = root.active_element();
        let (from, to) = if key.shift_key() {
            (&first, &last)
        } else {
            (&last, &first)
        };
        let outside = active
            .as_ref()
            .is_none_or(|a| !a.matches("button, a[href], input").unwrap_or(false));
        if active.as_ref() == Some(from) || outside {
            e.prevent_default();
            dom::focus(to);
        }
    })
}
