//! Events the widget emits to the host page (`on` / `off`).

use crate::error::{Error, Result};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::JsValue;

/// Every event the widget emits.
pub const EVENTS: [&str; 6] = [
    "code.created",
    "code.expired",
    "code.cancelled",
    "session.updated",
    "session.ended",
    "error",
];

#[derive(Default)]
pub struct Emitter {
    listeners: Vec<(&'static str, Function)>,
}

impl Emitter {
    pub fn on(&mut self, event: &str, f: Function) -> Result<()> {
        let name = known(event)?;
        // Adding the same function twice calls it once, like addEventListener.
        if !self.listeners.iter().any(|(n, g)| *n == name && *g == f) {
            self.listeners.push((name, f));
        }
        Ok(())
    }

    pub fn off(&mut self, event: &str, f: &Function) -> Result<()> {
        let name = known(event)?;
        self.listeners.retain(|(n, g)| !(*n == name && g == f));
        Ok(())
    }

    pub fn clear(&mut self) {
        self.listeners.clear();
    }

    /// The listeners of `event`, to be called once the caller has released
    /// its borrow of the widget (a listener may call back into it).
    pub fn listeners(&self, event: &str) -> Vec<Function> {
        self.listeners
            .iter()
            .filter(|(n, _)| *n == event)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// The event's name as we emit it; `unknown_event` for any other.
pub fn known(event: &str) -> Result<&'static str> {
    EVENTS
        .iter()
        .find(|e| **e == event)
        .copied()
        .ok_or_else(|| Error::UnknownEvent(event.to_owned()))
}

/// A pending call of the page's listeners.
pub struct Emission {
    pub listeners: Vec<Function>,
    pub detail: JsValue,
}

impl Emission {
    /// Calls each listener; one that throws is reported on the console and
    /// does not stop the others, nor reach the widget's own code.
    pub fn deliver(self) {
        for f in self.listeners {
            if let Err(err) = f.call1(&JsValue::NULL, &self.detail) {
                web_sys::console::error_2(&"Agent Assist: an event listener threw".into(), &err);
            }
        }
    }
}

/// A plain JS object from key/value pairs (events' details).
pub fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&obj, &JsValue::from_str(k), v);
    }
    obj.into()
}
