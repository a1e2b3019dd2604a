//! The boot module: what the page loads with the script tag or the npm
//! entry, kept small so that a page that never needs support pays little.
//!
//! It checks the config (so a mistake is reported by `init`, field by
//! field), draws the footer link (or, under the script tag, takes over the
//! one `src/js/loader.js` drew before this module was fetched: see
//! [`Boot::adopt`]), tells the page's side (`src/js/facade.js`)
//! when the visitor shows intent (the pointer over the link, focus on it) or
//! clicks, and opens the modal with its placeholder at the click, so the
//! click is answered at once whatever the network (with the "couldn't
//! reach" message if the widget module cannot be fetched). The facade fetches the widget module, hands it this module's
//! host element, link and open modal ([`Boot::hand_over`]), so the link
//! keeps its place in the page and nothing the visitor sees or has focused
//! changes, and from then on forwards every call.
//!
//! What only the widget module needs is not here, including the checks of
//! `identify()`'s and `createSessionCode()`'s arguments: the widget module
//! makes them when it arrives, before anything is sent.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ui::footer_link::FooterLink;
use crate::ui::pending::Pending;
use crate::ui::Host;
use crate::visitor::VisitorId;
use agent_assist_protocol::AuthMode;
use agent_assist_web::dom::{self, Listener};
use js_sys::Function;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element};

/// One widget's page-load half.
#[wasm_bindgen]
pub struct Boot {
    config: Config,
    doc: Document,
    /// Called on a click on the link.
    on_click: Function,
    /// Called when a click may be coming (pointer over the link, focus).
    on_intent: Function,
    /// `identify()` was called (and not undone by `reset()`).
    identified: bool,
    host: Option<Host>,
    link: Option<FooterLink>,
    /// The link's intent listeners.
    intent: Vec<Listener>,
    /// The modal, opened at the click, until the widget module takes it.
    pending: Option<Pending>,
    /// The host's variables and the link (src/ui/link.css, from the JS side).
    link_css: String,
}

#[wasm_bindgen]
impl Boot {
    /// Checks `config` (throws an `Error` with `code: "config"` naming the
    /// field at fault). `link_css`: the link's stylesheet.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: JsValue,
        on_click: Function,
        on_intent: Function,
        link_css: String,
    ) -> Result<Boot, JsValue> {
        Ok(Boot {
            config: Config::from_page(&config)?,
            doc: crate::mount::document()?,
            on_click,
            on_intent,
            identified: false,
            host: None,
            link: None,
            intent: Vec::new(),
            pending: None,
            link_css,
        })
    }

    /// Adds the footer link to `target` (see the widget's `mountFooterLink`).
    pub fn mount(&mut self, target: JsValue) -> Result<(), JsValue> {
        let parent = match crate::mount::target(&target)? {
            Some(p) => p,
            None => crate::mount::default_parent(&self.doc)?,
        };
        let root = self.ensure_host()?.root.clone();
        if self.link.is_none() {
            let label = self.config.strings.get(crate::i18n::Text::Link);
            let button = crate::ui::footer_link::draw(&self.doc, &root, label);
            self.take_link(button);
        }
        let host = self.host.as_ref().ok_or(Error::Destroyed)?;
        // Already there (the link the script tag drew, or a second call):
        // it keeps its place rather than moving to the end.
        if host.element.parent_element().as_ref() != Some(&parent) {
            host.mount(&parent)?;
        }
        Ok(())
    }

    /// Takes over the host element and link the script tag drew before
    /// this module was here (`src/js/loader.js`), in place: the label,
    /// language and appearance become the checked config's, and the link
    /// answers from now on.
    pub fn adopt(&mut self, element: Element) -> Result<(), JsValue> {
        let host = Host::adopt(element)?;
        Host::dress(&host.element, self.config.theme, self.config.strings.lang);
        let button = host.link_button();
        self.host = Some(host);
        if let Some(button) = button {
            button.set_text_content(Some(self.config.strings.get(crate::i18n::Text::Link)));
            self.take_link(button);
        }
        Ok(())
    }

    /// Throws `identity_required` on a `code` site before `identify()`: there
    /// is nobody to make a code for yet (and the link is hidden).
    #[wasm_bindgen(js_name = checkOpen)]
    pub fn check_open(&self) -> Result<(), JsValue> {
        if self.awaits_identity() {
            return Err(Error::NotIdentified.into());
        }
        Ok(())
    }

    /// `identify()` (true) or `reset()` (false) was called: a `code` site's
    /// link shows or hides.
    pub fn identified(&mut self, yes: bool) {
        self.identified = yes;
        self.update_link();
    }

    /// `reset()`: forgets the anonymous visitor id on this browser.
    pub fn forget(&self) {
        VisitorId::new(&self.config.site_key, self.config.visitor_storage).forget();
    }

    /// Marks the link busy while the widget module is on its way after a
    /// click (usually a few milliseconds).
    pub fn busy(&self, yes: bool) {
        if let Some(link) = self.link.as_ref() {
            let _ = link.button.toggle_attribute_with_force("aria-busy", yes);
        }
    }

    /// Opens the modal with its placeholder at once (or, after an error,
    /// puts the placeholder back) while the widget module is on its way.
    /// `on_close` runs on Cancel, the close button and Esc.
    pub fn pending(&mut self, on_close: Function) -> Result<(), JsValue> {
        if let Some(pending) = self.pending.as_mut() {
            pending.loading(&self.doc, &self.config.strings);
            return Ok(());
        }
        if self.host.as_ref().is_some_and(|h| !h.is_mounted()) {
            // The page took the widget out of the page: the modal comes back
            // (at the end of <body>), the link not until `mountFooterLink()`.
            self.intent.clear();
            self.link = None;
        }
        let host = self.ensure_mounted()?;
        host.ensure_frame_sheet()?;
        let root = host.root.clone();
        self.pending = Some(Pending::open(
            &self.doc,
            &root,
            &self.config.strings,
            self.config.privacy_url.as_deref(),
            callback(on_close),
        ));
        Ok(())
    }

    /// The widget module could not be fetched: the modal says so and offers
    /// "Try again" (`on_retry`). Returns the `error` event's detail.
    pub fn fail(&mut self, on_retry: Function) -> JsValue {
        if let Some(pending) = self.pending.as_mut() {
            pending.fail(&self.doc, &self.config.strings, callback(on_retry));
        }
        Error::Network.detail()
    }

    /// Closes the modal, if open, with focus back on the link.
    pub fn dismiss(&mut self) {
        if self.pending.take().is_some() {
            if let Some(link) = self.link.as_ref() {
                dom::focus(&link.button);
            }
        }
    }

    /// Whether this tab follows a session of the site (a reload, another
    /// page): the widget module is then fetched (once the page is idle), to pick it up.
    pub fn resumes(&self) -> bool {
        crate::saved::exists(&self.config.site_key)
    }

    /// Drops this module's listeners and hands the host element (with the
    /// link and the open modal inside) to the widget module; `undefined` if
    /// nothing was mounted.
    #[wasm_bindgen(js_name = handOver)]
    pub fn hand_over(&mut self) -> Option<Element> {
        if let Some(pending) = self.pending.take() {
            pending.release();
        }
        self.intent.clear();
        if let Some(link) = self.link.take() {
            let _ = link.button.remove_attribute("aria-busy");
            link.release();
        }
        self.host.take().map(Host::release)
    }

    /// Throws `unknown_event` for an event the widget never emits.
    #[wasm_bindgen(js_name = checkEvent)]
    pub fn check_event(event: &str) -> Result<(), JsValue> {
        Ok(crate::events::known(event).map(drop)?)
    }

    /// The error a page gets when the widget module cannot be fetched
    /// (`network`) or the widget was destroyed (`destroyed`).
    pub fn error(destroyed: bool) -> JsValue {
        if destroyed {
            Error::Destroyed.into()
        } else {
            Error::Network.into()
        }
    }
}

impl Boot {
    fn awaits_identity(&self) -> bool {
        self.config.auth == AuthMode::Code && !self.identified
    }

    /// Makes `button` this widget's link: its clicks open the modal, and a
    /// pointer over it or focus on it says a click may come, so the widget
    /// module can be fetched now and be here for it.
    fn take_link(&mut self, button: Element) {
        let on_click = self.on_click.clone();
        let link = FooterLink::adopt(button, move || {
            let _ = on_click.call0(&JsValue::NULL);
        });
        for event in ["pointerenter", "focus"] {
            let on_intent = self.on_intent.clone();
            self.intent
                .push(Listener::new(&link.button, event, move |_| {
                    let _ = on_intent.call0(&JsValue::NULL);
                }));
        }
        self.link = Some(link);
        self.update_link();
    }

    fn update_link(&self) {
        if let Some(link) = self.link.as_ref() {
            link.set_hidden(self.awaits_identity());
        }
    }

    fn ensure_host(&mut self) -> Result<&Host> {
        let (theme, lang) = (self.config.theme, self.config.strings.lang);
        Host::ensure(&mut self.host, &self.doc, theme, lang, &self.link_css)
    }

    fn ensure_mounted(&mut self) -> Result<&Host> {
        let (theme, lang) = (self.config.theme, self.config.strings.lang);
        Host::ensure_in_page(&mut self.host, &self.doc, theme, lang, &self.link_css)
    }
}

fn callback(f: Function) -> Rc<dyn Fn()> {
    Rc::new(move || {
        let _ = f.call0(&JsValue::NULL);
    })
}
