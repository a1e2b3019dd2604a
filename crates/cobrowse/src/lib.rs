//! # Agent Assist co-browsing (visitor side)
//!
//! Mirrors the visitor's page to the support agent, read-only, with
//! private fields redacted **in the visitor's browser, before anything is
//! serialised**. The widget loads this module only after the visitor has
//! allowed a session, and stops it when the session ends or the visitor
//! stops sharing. The wire format and the privacy rules shared with the
//! broker and the agent console are in `agent_assist_protocol::mirror`.
//!
//! ## What is sent
//! Over one WebSocket to the site's broker
//! (`wss://<broker>/v1/sessions/{id}/mirror`; the device token travels in
//! the first frame, never in the URL), and only while the page's path is
//! one of the site's shared pages:
//! - the page's origin and path (never its query or fragment), its title
//!   (not in private-by-default mode unless `<title>` is unredacted), the
//!   viewport size and scroll position;
//! - the document's elements and text nodes, with attributes that pass the
//!   protocol's `attribute_allowed` (URLs made absolute); the text of
//!   `<style>` elements (or their rules, when a script filled them through
//!   the CSSOM) and of the page's constructed stylesheets;
//! - the current value of text-like inputs, textareas and selects, and
//!   whether checkboxes and radios are checked (unless redacted);
//! - then the changes: DOM mutations, values as the visitor types, scroll
//!   positions, viewport size, pointer position and clicks.
//!
//! ## What is never sent
//! - Scripts, `<noscript>`, `<template>`, `<meta>`, `<base>`, links that are
//!   not stylesheets, comments, the doctype, event-handler (`on*`)
//!   attributes, `javascript:` and other non-http(s) URLs, `srcdoc`,
//!   `srcset`, form `action`s, `nonce`/`integrity`, and `value` attributes.
//! - Anything inside a shadow root (the page's web components show as
//!   their host elements and light DOM only), and the widget's own UI
//!   (`<agent-assist-widget>` and its contents).
//! - The inside of `<iframe>`, `<frame>`, `<object>`, `<embed>`, `<video>`
//!   and `<canvas>`: sent as redacted boxes. No frame is ever looked into.
//! - The value of password, hidden and file inputs.
//! - Redacted elements: only a box of their size (width, height, block or
//!   inline) is sent — no tag attributes, value, text or children, and no
//!   later change inside them. Redacted are:
//!   - `input type=password`, and an input that was a password field at
//!     any moment on this page (a "show password" toggle keeps it
//!     redacted); fields with `autocomplete` `current-password`,
//!     `new-password`, `one-time-code` or any `cc-…` (payment cards);
//!   - elements with the `data-agent-assist-redact` attribute, and those
//!     matching the site's `redact` selectors, with everything inside;
//!   - with `privateByDefault`, outside areas marked
//!     `data-agent-assist-unredact` or matching the site's `unredact`
//!     selectors: every element that directly holds text, every form field
//!     and every image, SVG, video, canvas and picture. Explicit redaction
//!     always wins over `unredact`.
//!
//! Redaction is checked again for every change before it is sent: an
//! element that became redacted (a class, an attribute, a type change) is
//! replaced by its box, and nothing else about it travels.
//!
//! ## Known limits
//! - Values the page sets by script without an `input`/`change` event, and
//!   rules added later to constructed or CSSOM-filled stylesheets, show at
//!   the next change of that field or the next snapshot.
//! - A site selector that starts to match through an ancestor's change
//!   (`.private input` once `.private` is added to a form) is applied as
//!   soon as that ancestor's attributes change, and for anything else
//!   before the element's next change is sent: redaction is always
//!   checked again before sending.
//! - A `<select>`'s `v` is the chosen option's text: `value` attributes
//!   never travel, so the mirror can only pick an option by its text.
//! - Elements whose name the protocol cannot carry (custom elements with
//!   `.` or `_` in their name) are left out with their contents.
//!
//! While the page is mirrored, the visitor sees a dashed outline around
//! the fields hidden from the agent (one constructed stylesheet, removed
//! on stop and on pages that are not shared).
//!
//! # Layout
//! - [`start`] and [`Mirror`] (this file): the only `#[wasm_bindgen]` surface.
//! - `options`: `start`'s options, checked field by field.
//! - `session`: the socket, what is sent when, reconnection.
//! - `policy`: what is redacted; `serialize`: the snapshot and node ids;
//!   `changes`: mutation records and the visitor's input as ops.
//! - `watch`: the observer, listeners and the per-frame flush.
//! - `outline`: the visitor's marker stylesheet; `error`: the error type.

mod changes;
mod error;
mod options;
mod outline;
mod policy;
mod serialize;
mod session;
mod watch;

#[cfg(all(test, target_arch = "wasm32"))]
mod web_tests;

use std::rc::Rc;
use wasm_bindgen::prelude::*;

pub use error::Error;

/// See the root Cargo.toml: smaller than dlmalloc, and no `unsafe` here.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

/// A running mirror of this page.
#[wasm_bindgen]
pub struct Mirror {
    session: Rc<session::Session>,
}

#[wasm_bindgen]
impl Mirror {
    /// Closes the socket and removes the observer, every listener and
    /// timer, and the outline stylesheet. Nothing is sent afterwards.
    /// Calling it again does nothing.
    pub fn stop(&self) {
        self.session.stop();
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.session.stop();
    }
}

/// Starts mirroring this page: `options` is `{ broker, sessionId, token,
/// redact, unredact, privateByDefault, onState }`. Throws an `Error`
/// naming the field when an option is missing or invalid (an invalid CSS
/// selector is named), before anything is observed or sent.
#[wasm_bindgen]
pub fn start(options: JsValue) -> Result<Mirror, JsValue> {
    let window = web_sys::window().ok_or(Error::NoDocument)?;
    let doc = window.document().ok_or(Error::NoDocument)?;
    let options = options::Options::from_js(&options, &doc)?;
    let session = session::Session::new(options, window, doc);
    session.start();
    Ok(Mirror { session })
}
