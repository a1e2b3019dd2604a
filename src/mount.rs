//! Where the footer link goes: the page's `mountFooterLink(target)`
//! argument, or the default place. Both modules use it: the boot module
//! mounts the link at page load, the widget module when it is used alone.

use crate::error::{Error, Result};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element};

/// `target` as the page gave it: nothing (the default place, `None`), a CSS
/// selector, or an element.
pub fn target(target: &JsValue) -> Result<Option<Element>> {
    if target.is_undefined() || target.is_null() {
        return Ok(None);
    }
    if let Some(selector) = target.as_string() {
        let doc = document()?;
        let found = doc.query_selector(&selector).map_err(|_| {
            Error::Config(["`", &selector, "` is not a valid CSS selector"].concat())
        })?;
        return found
            .map(Some)
            .ok_or_else(|| Error::Config(["no element matches `", &selector, "`"].concat()));
    }
    target
        .clone()
        .dyn_into::<Element>()
        .map(Some)
        .map_err(|_| Error::Config("the mount target must be an element or a CSS selector".into()))
}

/// `[data-agent-assist]`, else the last `<footer>`, else `<body>`.
pub fn default_parent(doc: &Document) -> Result<Element> {
    if let Ok(Some(marked)) = doc.query_selector("[data-agent-assist]") {
        return Ok(marked);
    }
    let footers = doc.get_elements_by_tag_name("footer");
    if let Some(footer) = footers.item(footers.length().saturating_sub(1)) {
        return Ok(footer);
    }
    doc.body()
        .map(JsCast::unchecked_into)
        .ok_or(Error::NoDocument)
}

pub fn document() -> Result<Document> {
    web_sys::window()
        .and_then(|w| w.document())
        .ok_or(Error::NoDocument)
}
