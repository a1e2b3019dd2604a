//! The page as the protocol's flat list of nodes, with redaction applied
//! while walking, and the node ids that later changes refer to.
//!
//! Ids live in a `WeakMap` (node → id), so a node the page drops is
//! forgotten with it. A snapshot starts a new map. A node has an id only
//! while it is in the mirror as the agent sees it: everything inside a box
//! or a skipped element is forgotten when that element is written, so a
//! change deep inside it can never be sent by id.

use crate::policy::{namespace, Class, Policy};
use agent_assist_protocol::mirror::{
    attribute_allowed, is_url_attribute, Node as Wire, Ns, Page, Redacted,
};
use js_sys::{Reflect, WeakMap, WeakSet};
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CssStyleSheet, Document, Element, Node, Url};

/// What the walk does after writing a node.
enum Written {
    /// Nothing was written.
    Nothing,
    /// Written; nothing below it travels.
    Leaf(u32),
    /// Written; its children follow, inside an unredacted area or not.
    Parent(u32, bool),
}

impl Written {
    fn id(&self) -> Option<u32> {
        match *self {
            Written::Nothing => None,
            Written::Leaf(id) | Written::Parent(id, _) => Some(id),
        }
    }
}

pub struct Serializer {
    pub policy: Rc<Policy>,
    doc: Document,
    ids: WeakMap,
    next: u32,
    /// Elements sent as redacted boxes.
    boxes: WeakSet,
    /// Elements that started an unredacted area when written (private mode),
    /// to notice when one stops matching.
    unredact_roots: WeakSet,
    /// `document.baseURI`, read once per snapshot or batch of changes.
    base: String,
    /// True while a snapshot is written: every id is new, so nothing needs
    /// forgetting below boxes and skipped elements.
    in_snapshot: bool,
    /// Rules of `<style>` elements filled through the CSSOM only (CSS-in-JS
    /// libraries), found while writing a snapshot.
    cssom: Vec<String>,
}

impl Serializer {
    pub fn new(doc: Document, policy: Rc<Policy>) -> Serializer {
        let mut ser = Serializer {
            policy,
            doc,
            ids: WeakMap::new(),
            next: 1,
            boxes: WeakSet::new(),
            unredact_roots: WeakSet::new(),
            base: String::new(),
            in_snapshot: false,
            cssom: Vec::new(),
        };
        ser.reset();
        ser
    }

    /// Forgets every id: nothing is mirrored until the next snapshot.
    pub fn reset(&mut self) {
        self.ids = WeakMap::new();
        self.ids.set(self.doc.unchecked_ref(), &JsValue::from(0u32));
        self.next = 1;
        self.boxes = WeakSet::new();
        self.unredact_roots = WeakSet::new();
    }

    /// The page as it is now, with new ids. `own_sheet` (the visitor's
    /// outline) is left out of the sheets.
    pub fn snapshot(&mut self, own_sheet: Option<&CssStyleSheet>) -> Page {
        self.reset();
        self.refresh_base();
        let win = web_sys::window();
        let num = |v: Option<Result<JsValue, JsValue>>| {
            v.and_then(Result::ok)
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
        };
        let (w, h) = match &win {
            Some(win) => (num(Some(win.inner_width())), num(Some(win.inner_height()))),
            None => (0.0, 0.0),
        };
        let (x, y) = page_scroll();
        let mut nodes = Vec::new();
        self.in_snapshot = true;
        self.cssom.clear();
        if let Some(root) = self.doc.document_element() {
            self.write_tree(&root, 0, false, &mut nodes);
        }
        self.in_snapshot = false;
        let mut sheets = adopted_sheets(&self.doc, own_sheet);
        sheets.append(&mut self.cssom);
        Page {
            url: page_url(),
            title: self.title(),
            w: w.round() as u32,
            h: h.round() as u32,
            x,
            y,
            nodes,
            sheets,
        }
    }

    /// The title, unless its `<title>` element is redacted (in
    /// private-by-default mode, a title often names the visitor).
    fn title(&self) -> String {
        let shown = match self.doc.query_selector("title") {
            Ok(Some(el)) => {
                self.policy.classify(&el, self.policy.in_unredacted(&el)) == Class::Visible
            }
            _ => true,
        };
        if shown {
            self.doc.title()
        } else {
            String::new()
        }
    }

    pub fn refresh_base(&mut self) {
        self.base = self.doc.base_uri().ok().flatten().unwrap_or_default();
    }

    pub fn id(&self, node: &Node) -> Option<u32> {
        self.ids
            .get(node.unchecked_ref())
            .as_f64()
            .map(|n| n as u32)
    }

    /// The first id the next written node gets: ids at or above a mark
    /// taken before a batch were written in that batch.
    pub fn next_id(&self) -> u32 {
        self.next
    }

    pub fn is_box(&self, el: &Element) -> bool {
        self.boxes.has(el)
    }

    pub fn started_unredacted(&self, el: &Element) -> bool {
        self.unredact_roots.has(el)
    }

    fn assign(&mut self, node: &Node) -> u32 {
        let id = self.next;
        self.next += 1;
        self.ids.set(node.unchecked_ref(), &JsValue::from(id));
        id
    }

    pub fn forget(&self, node: &Node) {
        self.ids.delete(node.unchecked_ref());
    }

    /// Forgets the ids of `root` and of everything below it.
    pub fn forget_tree(&self, root: &Node) {
        self.forget(root);
        self.forget_below(root);
    }

    fn forget_below(&self, root: &Node) {
        let Some(mut node) = root.first_child() else {
            return;
        };
        let mut depth = 1usize;
        loop {
            self.forget(&node);
            if let Some(first) = node.first_child() {
                depth += 1;
                node = first;
                continue;
            }
            loop {
                if let Some(next) = node.next_sibling() {
                    node = next;
                    break;
                }
                depth -= 1;
                match node.parent_node() {
                    Some(up) if depth > 0 => node = up,
                    _ => return,
                }
            }
        }
    }

    /// Writes `root` and everything below it that may travel, parents
    /// first, `root` with parent `parent`; `unredacted` tells whether
    /// `root`'s parent is in an unredacted area. Returns `root`'s id if it
    /// was written. Iterative: the page controls the depth.
    pub fn write_tree(
        &mut self,
        root: &Node,
        parent: u32,
        unredacted: bool,
        out: &mut Vec<Wire>,
    ) -> Option<u32> {
        let first = self.write_one(root, parent, unredacted, out);
        let root_id = first.id();
        let Written::Parent(id, inside) = first else {
            return root_id;
        };
        let Some(mut node) = root.first_child() else {
            return root_id;
        };
        // The parent id and area of the nodes at each level below `root`.
        let mut stack = vec![(id, inside)];
        loop {
            let Some(&(parent, inside)) = stack.last() else {
                return root_id;
            };
            if let Written::Parent(id, below) = self.write_one(&node, parent, inside, out) {
                if let Some(first) = node.first_child() {
                    stack.push((id, below));
                    node = first;
                    continue;
                }
            }
            loop {
                if let Some(next) = node.next_sibling() {
                    node = next;
                    break;
                }
                stack.pop();
                if stack.is_empty() {
                    return root_id;
                }
                match node.parent_node() {
                    Some(up) => node = up,
                    None => return root_id,
                }
            }
        }
    }

    fn write_one(
        &mut self,
        node: &Node,
        parent: u32,
        unredacted: bool,
        out: &mut Vec<Wire>,
    ) -> Written {
        match node.node_type() {
            Node::TEXT_NODE => {
                let i = self.assign(node);
                out.push(Wire {
                    i,
                    p: parent,
                    x: Some(node.node_value().unwrap_or_default()),
                    ..Wire::default()
                });
                Written::Leaf(i)
            }
            Node::ELEMENT_NODE => self.write_element(node.unchecked_ref(), parent, unredacted, out),
            // Comments, processing instructions, CDATA: never sent.
            _ => Written::Nothing,
        }
    }

    fn write_element(
        &mut self,
        el: &Element,
        parent: u32,
        unredacted: bool,
        out: &mut Vec<Wire>,
    ) -> Written {
        let Some(ns) = namespace(el) else {
            self.skip(el);
            return Written::Nothing;
        };
        let name = el.local_name();
        let starts = self.policy.starts_unredacted(el);
        let unredacted = unredacted || starts;
        match self.policy.classify_named(el, ns, &name, unredacted) {
            Class::Skip => {
                self.skip(el);
                Written::Nothing
            }
            Class::Box => {
                let i = self.assign(el);
                self.boxes.add(el);
                if !self.in_snapshot {
                    self.forget_below(el);
                }
                out.push(Wire {
                    i,
                    p: parent,
                    e: Some(name),
                    ns,
                    r: Some(redacted_box(el)),
                    ..Wire::default()
                });
                Written::Leaf(i)
            }
            Class::Visible => {
                let i = self.assign(el);
                self.boxes.delete(el);
                if starts {
                    self.unredact_roots.add(el);
                } else {
                    self.unredact_roots.delete(el);
                }
                let (v, c) = if ns == Ns::Html {
                    field_state(el, &name)
                } else {
                    (None, None)
                };
                if self.in_snapshot && name == "style" {
                    if let Some(rules) = cssom_only_rules(el) {
                        self.cssom.push(rules);
                    }
                }
                let leaf = ns == Ns::Html && name == "textarea";
                out.push(Wire {
                    i,
                    p: parent,
                    e: Some(name),
                    ns,
                    a: self.attributes(el),
                    v,
                    c,
                    ..Wire::default()
                });
                // A textarea's text is its default value; the live one is `v`.
                if leaf {
                    Written::Leaf(i)
                } else {
                    Written::Parent(i, unredacted)
                }
            }
        }
    }

    fn skip(&self, el: &Element) {
        if !self.in_snapshot {
            self.forget_tree(el);
        }
    }

    fn attributes(&self, el: &Element) -> Vec<(String, String)> {
        let map = el.attributes();
        let mut out = Vec::new();
        for k in 0..map.length() {
            let Some(attr) = map.item(k) else { continue };
            let name = attr.name();
            if let Some(value) = self.attribute(&name, attr.value()) {
                out.push((name, value));
            }
        }
        out
    }

    /// An attribute's value as it travels (URLs made absolute), or `None`
    /// if it may not travel.
    pub fn attribute(&self, name: &str, value: String) -> Option<String> {
        let value = if is_url_attribute(name) {
            absolute(value, &self.base)?
        } else {
            value
        };
        attribute_allowed(name, &value).then_some(value)
    }
}

/// A URL attribute made absolute against the document's base. An empty
/// value or a bare fragment (`#top`, an SVG `<use href="#icon">`) stays as
/// it is: it points into the page itself, and resolving it would copy the
/// page's query string, which the mirror never receives.
fn absolute(value: String, base: &str) -> Option<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Some(value);
    }
    Url::new_with_base(trimmed, base).ok().map(|u| u.href())
}

/// A form field's live state: `v` for text-like inputs, textareas and
/// selects (the chosen option's text), `c` for checkboxes and radios. Never a password, a hidden or a
/// file input's value (a password field is a box anyway).
pub fn field_state(el: &Element, name: &str) -> (Option<String>, Option<bool>) {
    match name {
        "input" => {
            let kind = el.get_attribute("type").unwrap_or_default();
            let kind = kind.trim().to_ascii_lowercase();
            match kind.as_str() {
                "password" | "hidden" | "file" | "image" => (None, None),
                "checkbox" | "radio" => (None, Some(prop(el, "checked").as_bool() == Some(true))),
                _ => (prop(el, "value").as_string(), None),
            }
        }
        "textarea" => (prop(el, "value").as_string(), None),
        // Options travel without their `value` attributes, so the mirror
        // can only pick the chosen one by its text (an option's value
        // defaults to its text there).
        "select" => {
            let chosen = prop(el, "selectedIndex")
                .as_f64()
                .filter(|i| *i >= 0.0)
                .and_then(|i| Reflect::get_u32(&prop(el, "options"), i as u32).ok())
                .and_then(|option| Reflect::get(&option, &JsValue::from_str("text")).ok())
                .and_then(|text| text.as_string());
            (Some(chosen.unwrap_or_default()), None)
        }
        _ => (None, None),
    }
}

fn prop(el: &Element, name: &str) -> JsValue {
    Reflect::get(el, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// A redacted element's box: its rounded size, and whether it is laid out
/// as a block.
fn redacted_box(el: &Element) -> Redacted {
    let rect = el.get_bounding_client_rect();
    let display = web_sys::window()
        .and_then(|w| w.get_computed_style(el).ok().flatten())
        .and_then(|s| s.get_property_value("display").ok())
        .unwrap_or_default();
    let first = display.split_ascii_whitespace().next().unwrap_or_default();
    Redacted {
        w: rect.width().round() as u32,
        h: rect.height().round() as u32,
        b: matches!(
            first,
            "block" | "flex" | "grid" | "list-item" | "table" | "flow-root"
        ),
    }
}

/// The page's address without query or fragment (they often carry
/// private data).
pub fn page_url() -> String {
    let Some(loc) = web_sys::window().map(|w| w.location()) else {
        return String::new();
    };
    [
        loc.origin().unwrap_or_default(),
        loc.pathname().unwrap_or_default(),
    ]
    .concat()
}

pub fn page_scroll() -> (i32, i32) {
    match web_sys::window() {
        Some(w) => (
            w.scroll_x().unwrap_or(0.0).round() as i32,
            w.scroll_y().unwrap_or(0.0).round() as i32,
        ),
        None => (0, 0),
    }
}

/// The text of the document's constructed stylesheets, but `own`.
fn adopted_sheets(doc: &Document, own: Option<&CssStyleSheet>) -> Vec<String> {
    let mut out = Vec::new();
    for sheet in doc.adopted_style_sheets().iter() {
        if own.is_some_and(|own| JsValue::from(own.clone()) == sheet) {
            continue;
        }
        if let Ok(sheet) = sheet.dyn_into::<CssStyleSheet>() {
            if let Some(text) = rules_text(&sheet) {
                out.push(text);
            }
        }
    }
    out
}

fn rules_text(sheet: &CssStyleSheet) -> Option<String> {
    let rules = sheet.css_rules().ok()?;
    let mut text = String::new();
    for k in 0..rules.length() {
        if let Some(rule) = rules.item(k) {
            text.push_str(&rule.css_text());
            text.push('\n');
        }
    }
    (!text.is_empty()).then_some(text)
}

/// The rules of a `<style>` element whose text is empty but whose sheet was
/// filled with `insertRule` (what CSS-in-JS libraries do in production):
/// without them the mirror would be unstyled.
fn cssom_only_rules(el: &Element) -> Option<String> {
    if el
        .text_content()
        .is_some_and(|t| t.chars().any(|c| !c.is_whitespace()))
    {
        return None;
    }
    let sheet = prop(el, "sheet").dyn_into::<CssStyleSheet>().ok()?;
    rules_text(&sheet)
}
