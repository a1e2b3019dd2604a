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
//! - [`shell`]: the modal's frame and its placeholder, which both modules
//!   build, so the hand-over from one to the other changes nothing.
//! - `pending::Pending` (boot module): the modal from the click until the
//!   widget module takes it over (or says it cannot be reached).
//!
//! The boot module has the host, the link, the shell and `pending`; the
//! widget module everything but `pending`.

#[cfg(not(feature = "boot"))]
pub mod code_modal;
#[cfg(not(feature = "boot"))]
pub mod consent_prompt;
pub mod footer_link;
#[cfg(not(feature = "boot"))]
pub mod identity_form;
#[cfg(not(feature = "boot"))]
pub mod indicator;
#[cfg(feature = "boot")]
pub mod pending;
pub mod shell;

use crate::config::Theme;
use crate::error::Result;
use agent_assist_web::dom;
use web_sys::{CssStyleSheet, Document, Element, ShadowRoot, ShadowRootInit, ShadowRootMode};

/// The host's variables and the link, minified by `build.rs`. The boot
/// module gets the same sheet from its JS side (`makeWidget`'s `LINK_CSS`),
/// which needs it to draw the link early, so it is not in its wasm twice.
#[cfg(not(feature = "boot"))]
pub const LINK_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/link.css"));
/// The modal's frame (both modules), adopted when first needed.
const FRAME_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/frame.css"));
/// What only the widget module draws.
#[cfg(not(feature = "boot"))]
const WIDGET_CSS: &str = include_str!(concat!(env!("OUT_DIR"), "/widget.css"));

/// The element the widget adds to the page, and its shadow root.
pub struct Host {
    pub element: Element,
    pub root: ShadowRoot,
    /// False once [`Host::release`] handed the element on: dropping this
    /// `Host` then leaves it in the page.
    owned: bool,
}

impl Host {
    /// A new host element with `link_css` (the host's variables and the
    /// link) adopted.
    pub fn new(doc: &Document, theme: Theme, lang: &str, link_css: &str) -> Result<Host> {
        let element = doc.create_element("agent-assist-widget")?;
        Host::dress(&element, theme, lang);
        let root = element.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?;
        // A constructable stylesheet needs no <style> element and no
        // 'unsafe-inline', so the widget works under a strict CSP.
        let link = sheet(link_css)?;
        root.set_adopted_style_sheets(&js_sys::Array::of1(&link));
        Host::wrap(element, root)
    }

    /// Sets the host element's language and appearance (`data-theme`, none
    /// for `auto`: the page's colour scheme decides).
    pub fn dress(element: &Element, theme: Theme, lang: &str) {
        dom::attr(element, "lang", lang);
        match theme {
            Theme::Auto => {
                let _ = element.remove_attribute("data-theme");
            }
            Theme::Light => dom::attr(element, "data-theme", "light"),
            Theme::Dark => dom::attr(element, "data-theme", "dark"),
        }
    }

    /// The host in `slot`, made now if there is none yet.
    pub fn ensure<'a>(
        slot: &'a mut Option<Host>,
        doc: &Document,
        theme: Theme,
        lang: &str,
        link_css: &str,
    ) -> Result<&'a Host> {
        if slot.is_none() {
            *slot = Some(Host::new(doc, theme, lang, link_css)?);
        }
        slot.as_ref().ok_or(crate::Error::Destroyed)
    }

    /// [`Host::ensure`], and the host in the page: at the end of `<body>` if
    /// the site has not mounted the footer link (a modal opened without it).
    pub fn ensure_in_page<'a>(
        slot: &'a mut Option<Host>,
        doc: &Document,
        theme: Theme,
        lang: &str,
        link_css: &str,
    ) -> Result<&'a Host> {
        let host = Host::ensure(slot, doc, theme, lang, link_css)?;
        if !host.is_mounted() {
            let body = doc.body().ok_or(crate::Error::NoDocument)?;
            host.mount(&body)?;
        }
        Ok(host)
    }

    /// A host over `element` and its shadow root; the widget module adds
    /// its own sheet, and the frame's (it draws modals and the indicator,
    /// and is only fetched once they may be needed).
    fn wrap(element: Element, root: ShadowRoot) -> Result<Host> {
        let host = Host {
            element,
            root,
            owned: true,
        };
        #[cfg(not(feature = "boot"))]
        {
            host.add_widget_sheet()?;
            host.ensure_frame_sheet()?;
        }
        Ok(host)
    }

    /// Puts the widget module's own sheet before the others (see
    /// widget.css for why before).
    #[cfg(not(feature = "boot"))]
    fn add_widget_sheet(&self) -> Result<()> {
        let sheets = self.root.adopted_style_sheets();
        let own = sheet(WIDGET_CSS)?;
        sheets.unshift(&own);
        self.root.set_adopted_style_sheets(&sheets);
        Ok(())
    }

    /// Adds the frame's sheet last, unless it is there: a host the boot
    /// module opened a modal in has it already. Marked on the host element
    /// (`data-frame`), which both modules see, as their sheets are not the
    /// same objects.
    pub fn ensure_frame_sheet(&self) -> Result<()> {
        if self.element.has_attribute("data-frame") {
            return Ok(());
        }
        let sheets = self.root.adopted_style_sheets();
        let frame = sheet(FRAME_CSS)?;
        sheets.push(&frame);
        self.root.set_adopted_style_sheets(&sheets);
        dom::attr(&self.element, "data-frame", "");
        Ok(())
    }

    /// Takes over a host the boot module made, or the script tag drew
    /// before the boot module was here (loader.js: same markup, same
    /// stylesheet), wherever the page has it.
    pub fn adopt(element: Element) -> Result<Host> {
        let root = element
            .shadow_root()
            .ok_or_else(|| crate::Error::Js("the widget's host has no shadow root".into()))?;
        Host::wrap(element, root)
    }

    /// The footer link in this host, if it has one.
    pub fn link_button(&self) -> Option<Element> {
        self.root.query_selector("button.link").ok().flatten()
    }

    /// Hands the element on (to the widget module), leaving it in the page.
    #[cfg(feature = "boot")]
    pub fn release(mut self) -> Element {
        self.owned = false;
        self.element.clone()
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

fn sheet(css: &str) -> Result<CssStyleSheet> {
    let sheet = CssStyleSheet::new()?;
    sheet.replace_sync(css)?;
    Ok(sheet)
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.owned {
            self.element.remove();
        }
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
