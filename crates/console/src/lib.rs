//! # Agent Assist agent console
//!
//! The page an agent works in (`www/agent.html`): sign in with an agent
//! credential, type the 6-digit code the visitor reads out, and follow the
//! session the code starts until it ends. Rust compiled to its own wasm
//! module, so the visitor's widget does not carry any of it.
//!
//! # Layout
//! - [`start`] (this file): the only `#[wasm_bindgen]` surface.
//! - `app`: the controller — which card is shown, the broker calls, the
//!   tab's sign-in and followed session in `sessionStorage`.
//! - Components, each owning its nodes, listeners and timers and removing
//!   them on drop: `sign_in`, `account_bar`, `code_entry`, `session_panel`
//!   and, inside it, `visitor_card` (who the visitor is, their history) and
//!   `mirror` (the visitor's screen while the session is active: a frame
//!   drawn from the broker's WebSocket, read-only).
//! - `stream`: the session's Server-Sent Events, with ticket renewal and
//!   resume from the last event.
//! - [`text`]: the wording and the pure rules (pasted codes, durations,
//!   one sentence per session state and per visitor identity); `error`:
//!   the error type.
//!
//! Broker calls go through `agent-assist-web`, shared with the widget.

mod account_bar;
mod app;
mod code_entry;
mod error;
mod mirror;
mod session_panel;
mod sign_in;
mod stream;
pub mod text;
mod visitor_card;

#[cfg(all(test, target_arch = "wasm32"))]
mod web_tests;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::Element;

pub use error::Error;

/// See the root Cargo.toml: smaller than dlmalloc, and no `unsafe` here.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());

thread_local! {
    /// The console on the page. It lives as long as the page, so it is kept
    /// here rather than handed to JS, whose garbage collector could free it.
    static CONSOLE: RefCell<Option<Rc<app::App>>> = const { RefCell::new(None) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// Renders the agent console into `root`, talking to the broker at the
/// page's origin. Calling it again replaces the previous console.
#[wasm_bindgen]
pub fn start(root: Element) -> Result<(), JsValue> {
    let base = web_sys::window()
        .ok_or(Error::NoDocument)?
        .location()
        .origin()
        .map_err(Error::from)?;
    let app = app::App::start(&root, base)?;
    // Dropping the previous console removes its nodes, listeners and stream.
    CONSOLE.with(|c| c.replace(Some(app)));
    Ok(())
}

/// An id no other element of the page has, for `aria-labelledby`.
fn unique_id(prefix: &str) -> String {
    let n = NEXT_ID.with(|n| {
        let v = n.get().wrapping_add(1);
        n.set(v);
        v
    });
    [prefix, "-", &n.to_string()].concat()
}
