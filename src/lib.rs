//! # Agent Assist browser SDK
//!
//! Rust compiled to WebAssembly. A site embeds it with one script tag (or
//! imports the npm package) and gets a footer "Agent Assist" link; a click
//! opens the share-screen modal with a 6-digit support code from the broker.
//!
//! The crate builds two wasm modules, so that page load carries only what
//! it needs:
//! - the **boot module** (`--features boot`): the script tag and the npm
//!   entry load it with the page. It checks the config, draws the footer
//!   link and, at the click, the modal's frame (`boot`).
//! - the **widget module** (the default): everything after the click. The
//!   page-facing facade (`src/js/facade.js`) fetches it on the visitor's
//!   first sign of intent (pointer over the link, focus) or at once when
//!   this tab follows a session, hands it the boot module's host element,
//!   link and open modal, and from then on forwards every call to it.
//!
//! # Layout
//! - [`AgentAssist`] (this file): the widget module's JS API, its only
//!   `#[wasm_bindgen]` surface; `boot` has the boot module's, which the
//!   facade calls. Errors become JS `Error`s with a `code` property there
//!   and only there.
//! - `mount`: where the footer link goes, shared by both modules.
//! - `widget`: the controller — the code's life, the session after it
//!   (consent, indicator, resume after reload), the UI, the page's events.
//! - `stream`: the session's Server-Sent Events.
//! - `ui`: components (host + shadow root, footer link, code modal), each
//!   owning its nodes, listeners and timers and removing them on drop.
//! - `client`: the broker calls, on `agent-assist-web`'s shared `fetch` core.
//! - `config`: the page's config, checked field by field.
//! - `identity`: `identify()`'s object and the visitor's typed name and
//!   email, checked field by field.
//! - `visitor`: the anonymous visitor id, made on first use and kept where
//!   the site chose (`visitorStorage`).
//! - [`i18n`]: built-in English and French wording and overrides.
//! - [`code`]: pure formatting helpers (grouping, spoken form, countdown).
//! - `events`, `error`: the page-facing event emitter and the error type.
//!
//! Nothing runs at import time and nothing touches the network, storage or
//! timers until the visitor asks for a code.

// The boot build compiles the shared modules (config, wording, identity
// checks, the host) whole but uses only part of them; what it leaves out is
// used by the widget build, where these lints stay on.
#![cfg_attr(feature = "boot", allow(dead_code, unused_imports))]

// The boot module is built from this crate with the `boot` feature: only
// what page load needs. The widget module (the default) has everything else.
#[cfg(feature = "boot")]
mod boot;
#[cfg(not(feature = "boot"))]
mod client;
pub mod code;
mod config;
mod error;
mod events;
pub mod i18n;
mod identity;
mod mount;
mod saved;
#[cfg(not(feature = "boot"))]
mod stream;
mod ui;
mod visitor;
#[cfg(not(feature = "boot"))]
mod widget;

#[cfg(all(test, target_arch = "wasm32"))]
mod web_tests;

#[cfg(not(feature = "boot"))]
use wasm_bindgen::prelude::*;

/// See Cargo.toml: smaller than dlmalloc, and built without `unsafe` here.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
#[cfg(not(feature = "boot"))]
use web_sys::Element;

pub use error::Error;

/// One Agent Assist widget on the page.
#[cfg(not(feature = "boot"))]
#[wasm_bindgen]
pub struct AgentAssist {
    widget: widget::Widget,
}

#[cfg(not(feature = "boot"))]
#[wasm_bindgen]
impl AgentAssist {
    /// Checks `config` and creates a widget. Nothing is shown until
    /// `mountFooterLink()` or `open()`, and nothing is sent until a code is
    /// asked for.
    ///
    /// `cobrowse` is how the co-browsing module is loaded once a visitor
    /// allows a session: a function returning a promise of the module. The
    /// boot module passes it; sites do not. `host`, from the boot module
    /// too, is its `<agent-assist-widget>` element: the widget takes it over
    /// with its footer link, so the link keeps its place and its focus.
    pub fn init(
        config: JsValue,
        cobrowse: Option<js_sys::Function>,
        host: Option<Element>,
    ) -> Result<AgentAssist, JsValue> {
        let config = config::Config::from_page(&config)?;
        let widget = widget::Widget::new(config, cobrowse, host)?;
        // Picks up a session this tab was already following (a reload, or
        // the visitor moved to another page); does nothing otherwise.
        widget.resume();
        Ok(AgentAssist { widget })
    }

    /// Adds the footer link to `target` (an element or a CSS selector), or by
    /// default to `[data-agent-assist]`, else the last `<footer>`, else `<body>`.
    #[wasm_bindgen(js_name = mountFooterLink)]
    pub fn mount_footer_link(&self, target: JsValue) -> Result<(), JsValue> {
        let parent = mount::target(&target)?;
        Ok(self.widget.call(move |w| w.mount_footer_link(parent))?)
    }

    /// Opens the share-screen modal and asks the broker for a code.
    pub fn open(&self) -> Result<(), JsValue> {
        Ok(self.widget.call(widget::Widget::open)?)
    }

    /// Closes the modal; a code on display is withdrawn at the broker.
    pub fn close(&self) -> Result<(), JsValue> {
        Ok(self.widget.call(widget::Widget::close)?)
    }

    /// For sites that draw their own UI: resolves to `{ code, sessionId,
    /// expiresAt, expiresIn }`, the live code or a new one. `visitor`
    /// (`{ name, email }`, optional) is what the site's own form asked.
    #[wasm_bindgen(js_name = createSessionCode)]
    pub fn create_session_code(&self, visitor: JsValue) -> js_sys::Promise {
        self.widget
            .create_session_code(identity::visitor_from_js(&visitor))
    }

    /// Tells the widget who the site's logged-in user is: `{ userId, name,
    /// email, customData, token }`, where `token` is the signature the
    /// site's server made. Sent with every code request; with `auth:
    /// "code"` the footer link appears only once this is called. Calling it
    /// again replaces the identity.
    pub fn identify(&self, identity: JsValue) -> Result<(), JsValue> {
        let identity = identity::identity_from_js(&identity)?;
        Ok(self.widget.call(move |w| w.identify(identity))?)
    }

    /// Forgets the visitor id and the identity on this browser (logout,
    /// shared devices) and withdraws a code on display. The next code
    /// request makes a new visitor id.
    pub fn reset(&self) -> Result<(), JsValue> {
        Ok(self.widget.call(widget::Widget::reset)?)
    }

    /// Withdraws the live code at the broker (custom UIs' Cancel).
    #[wasm_bindgen(js_name = cancelSessionCode)]
    pub fn cancel_session_code(&self) -> Result<(), JsValue> {
        Ok(self.widget.call(widget::Widget::cancel_code)?)
    }

    /// Calls `listener(detail)` on `event`: `code.created`, `code.expired`,
    /// `code.cancelled`, `session.updated`, `session.ended` or `error`.
    pub fn on(&self, event: &str, listener: js_sys::Function) -> Result<(), JsValue> {
        let event = events::known(event)?;
        Ok(self.widget.call(move |w| w.on(event, listener))?)
    }

    /// Stops calling `listener` on `event`.
    pub fn off(&self, event: &str, listener: js_sys::Function) -> Result<(), JsValue> {
        let event = events::known(event)?;
        Ok(self.widget.call(move |w| w.off(event, &listener))?)
    }

    /// Removes every node and listener the widget added and withdraws its code.
    pub fn destroy(&self) {
        let _ = self.widget.call(|w| {
            w.destroy();
            Ok(())
        });
    }

    /// The SDK's version.
    #[wasm_bindgen(getter)]
    pub fn version() -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }
}
