//! Browser plumbing shared by the Agent Assist wasm modules (the visitor's
//! widget and the agent console), so each stays small and neither repeats
//! the other.
//!
//! # Layout
//! - [`dom`]: element helpers and [`dom::Listener`], an event listener that
//!   removes itself when dropped.
//! - [`http`]: `fetch` calls to the broker with the protocol's types, a time
//!   limit, and the broker's JSON errors as [`http::FetchError`].
//! - [`js_de`]: a serde deserializer over `JsValue` that formats no messages
//!   (keeps float formatting out of the wasm).

pub mod dom;
pub mod http;
pub mod js_de;
