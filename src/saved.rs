//! The session this tab is following, kept in `sessionStorage` so that a
//! reload or a move to another page of the site picks it up again.
//!
//! Written only once the visitor has asked for a code (never on page load),
//! and removed when the session ends. `sessionStorage` is per tab, so another
//! tab never resumes this one's session. Blocked storage (sandboxed frames,
//! some private modes) just means no resume.

use agent_assist_web::js_de::from_js;
use js_sys::{Object, Reflect};
use serde::Deserialize;
use wasm_bindgen::JsValue;

#[derive(Clone, Debug, Deserialize)]
pub struct Saved {
    pub id: String,
    pub token: String,
    pub code: String,
    /// When the code expires, `Date.now()` milliseconds (the device's clock,
    /// counted from the broker's `expires_in`).
    pub deadline: f64,
}

fn key(site_key: &str) -> String {
    ["agent-assist:session:", site_key].concat()
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

#[cfg(not(feature = "boot"))]
pub fn save(site_key: &str, saved: &Saved) {
    let obj = Object::new();
    for (k, v) in [
        ("id", JsValue::from_str(&saved.id)),
        ("token", JsValue::from_str(&saved.token)),
        ("code", JsValue::from_str(&saved.code)),
        ("deadline", JsValue::from_f64(saved.deadline)),
    ] {
        let _ = Reflect::set(&obj, &k.into(), &v);
    }
    if let (Some(s), Ok(json)) = (storage(), js_sys::JSON::stringify(&obj)) {
        if let Some(text) = json.as_string() {
            // A full or blocked storage only costs the resume.
            let _ = s.set_item(&key(site_key), &text);
        }
    }
}

/// Whether this tab follows a session of the site (the boot module then
/// fetches the widget module once the page is idle, to pick it up).
#[cfg(feature = "boot")]
pub fn exists(site_key: &str) -> bool {
    storage().is_some_and(|s| s.get_item(&key(site_key)).ok().flatten().is_some())
}

#[cfg(not(feature = "boot"))]
pub fn load(site_key: &str) -> Option<Saved> {
    let text = storage()?.get_item(&key(site_key)).ok()??;
    let json = js_sys::JSON::parse(&text).ok()?;
    from_js(json).ok()
}

#[cfg(not(feature = "boot"))]
pub fn clear(site_key: &str) {
    if let Some(s) = storage() {
        let _ = s.remove_item(&key(site_key));
    }
}
