//! What the visitor sees of the redaction: while the page is mirrored, the
//! elements hidden from the agent get a subtle dashed outline. One
//! constructed stylesheet on `document.adoptedStyleSheets`: no `<style>`
//! node in the page and no `'unsafe-inline'` needed under a strict CSP.
//! Removed when dropped.

use crate::policy::{Policy, REDACT_ATTR, UNREDACT_ATTR};
use js_sys::Array;
use wasm_bindgen::JsValue;
use web_sys::{CssStyleSheet, Document};

const LOOK: &str =
    "{outline:2px dashed rgba(217,119,6,.7)!important;outline-offset:2px!important}\n";

/// Always hidden from the agent: password and card fields, the redact
/// attribute, frames and plugins.
const ALWAYS: &str = ":is(input[type=password i],[autocomplete~=current-password i],[autocomplete~=new-password i],[autocomplete~=one-time-code i],[autocomplete^=cc- i],[autocomplete*=\" cc-\" i],iframe,frame,object,embed)";

pub struct Outline {
    doc: Document,
    sheet: CssStyleSheet,
}

impl Outline {
    pub fn add(doc: &Document, policy: &Policy) -> Option<Outline> {
        let sheet = CssStyleSheet::new().ok()?;
        sheet.replace_sync(&css(policy)).ok()?;
        let sheets: Array = doc.adopted_style_sheets().slice(0, u32::MAX);
        sheets.push(&sheet);
        doc.set_adopted_style_sheets(&sheets);
        Some(Outline {
            doc: doc.clone(),
            sheet,
        })
    }

    pub fn sheet(&self) -> &CssStyleSheet {
        &self.sheet
    }
}

impl Drop for Outline {
    fn drop(&mut self) {
        let own = JsValue::from(self.sheet.clone());
        let kept: Array = self
            .doc
            .adopted_style_sheets()
            .iter()
            .filter(|s| *s != own)
            .collect();
        self.doc.set_adopted_style_sheets(&kept);
    }
}

/// The stylesheet's text: one rule per selector, so that a selector the
/// browser reads differently in a stylesheet spoils only its own rule.
pub fn css(policy: &Policy) -> String {
    let mut css = [ALWAYS, LOOK, "[", REDACT_ATTR, "]", LOOK].concat();
    for s in &policy.redact_list {
        css.push_str(":is(");
        css.push_str(s);
        css.push(')');
        css.push_str(LOOK);
    }
    if policy.private {
        // Form fields outside unredacted areas (text cannot be selected in CSS).
        css.push_str(":is(input,textarea,select):not([");
        css.push_str(UNREDACT_ATTR);
        css.push_str("],[");
        css.push_str(UNREDACT_ATTR);
        css.push_str("] *");
        for s in &policy.unredact_list {
            css.push_str(",:is(");
            css.push_str(s);
            css.push_str("),:is(");
            css.push_str(s);
            css.push_str(") *");
        }
        css.push(')');
        css.push_str(LOOK);
    }
    css
}
