//! Builds the visitor's page into the mirror frame's document, with DOM
//! calls only (never an HTML parser: no `innerHTML`, no `document.write`),
//! and keeps it in step with the visitor's changes.
//!
//! Everything here came from the visitor's browser through the broker, and
//! both have checked it against the protocol's privacy rules. The rules are
//! applied once more all the same ([`element_allowed`],
//! [`redacted_element_allowed`], [`attribute_allowed`]); what fails them is
//! skipped without a word, and scripts, frames, plug-ins, `<base>` and
//! `<meta>` are never created whatever the rules say. The frame runs no
//! script anyway (its sandbox and its own policy, `www/mirror.html`).
//!
//! Objects of the frame's document belong to the frame's JS realm, where
//! `instanceof` against the console's classes fails; so nodes are told
//! apart by `nodeType` and cast unchecked, never with `dyn_ref`.

use agent_assist_protocol::mirror::{
    attribute_allowed, element_allowed, redacted_element_allowed, Node as Wire, Ns, Op, Page,
    Redacted,
};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CssStyleDeclaration, Document, Element, Node};

/// The mark of a redacted element's box, and what our style draws.
pub const REDACTED: &str = "data-agent-assist-redacted";

/// Never created, whatever a frame says: they would run, load or embed
/// something, or change how the document's URLs resolve or behave.
const NEVER_CREATED: &[&str] = &[
    "script",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "portal",
    "fencedframe",
    "base",
    "meta",
    "noscript",
    "template",
];

/// Attributes skipped on top of the protocol's rules: our own mark (a
/// visitor's page must not draw boxes of its own) and autoplay (the
/// visitor's videos would play, with sound, in the agent's console).
const SKIPPED_ATTRIBUTES: &[&str] = &[REDACTED, "autoplay"];

const XLINK: &str = "http://www.w3.org/1999/xlink";
const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The mirror's own style: redacted boxes are a grey hatch of the element's
/// size that nothing of the page can restyle.
const MIRROR_CSS: &str = "[data-agent-assist-redacted]{\
background:repeating-linear-gradient(135deg,#c9ced6 0 6px,#e3e6eb 6px 12px)!important;\
border:1px solid #9aa3af!important;box-sizing:border-box!important;overflow:hidden!important;\
margin:0!important;padding:0!important;min-width:0!important;min-height:0!important;\
max-width:none!important;max-height:none!important;color:transparent!important;\
background-clip:border-box!important;opacity:1!important;visibility:visible!important}";

/// How many nodes the map may hold before those no longer in the page are
/// dropped from it (they are kept until then: a node moved elsewhere is
/// removed by one op and put back by the next).
const MIN_PRUNE: usize = 4096;

/// Hashes a node id. The standard hasher (SipHash) has no random keys on
/// this target anyway, and ids are 32 bits, so a mix of the bits does as
/// well for a fraction of the code.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // splitmix64's finaliser: every input bit moves every output bit.
        let mut z = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

type Ids = BuildHasherDefault<IdHasher>;

/// The visitor's page in one document, and which node is which.
pub struct Renderer {
    doc: Document,
    nodes: HashMap<u32, Node, Ids>,
    /// Redacted boxes: no attributes, children, text or value ever.
    redacted: HashSet<u32, Ids>,
    /// Nodes the mirror added (`<base>`, our style, constructed sheets);
    /// a list of children from the visitor leaves them where they are.
    ours: Vec<Node>,
    /// Of the last page: its URL (for `<base>`) and constructed sheets,
    /// put back if the visitor's page replaces its root element.
    url: String,
    sheets: Vec<String>,
    /// The page's scroll, applied again as its stylesheets load.
    scroll: (i32, i32),
    prune_at: usize,
}

/// A field's value or checkedness, set once the element has its children
/// (a `<select>` without its options would ignore its value).
struct Field {
    element: Element,
    value: Option<String>,
    checked: Option<bool>,
}

impl Renderer {
    /// Draws into `doc`, the frame's document, which starts blank.
    pub fn new(doc: Document) -> Renderer {
        let mut renderer = Renderer {
            doc,
            nodes: HashMap::default(),
            redacted: HashSet::default(),
            ours: Vec::new(),
            url: String::new(),
            sheets: Vec::new(),
            scroll: (0, 0),
            prune_at: MIN_PRUNE,
        };
        renderer.blank();
        renderer
    }

    #[cfg(all(test, target_arch = "wasm32"))]
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// Replaces what the frame shows with an empty page.
    pub fn blank(&mut self) {
        self.forget();
        self.url.clear();
        self.sheets.clear();
        self.scroll = (0, 0);
        let root = self.html("html");
        let _ = root.append_child(&self.html("head"));
        let _ = root.append_child(&self.html("body"));
        self.set_root(&root);
    }

    /// Replaces what the frame shows with `page`.
    pub fn page(&mut self, page: &Page) {
        self.forget();
        self.url = page.url.clone();
        self.sheets = page.sheets.clone();
        let mut root: Option<Element> = None;
        let mut fields = Vec::new();
        for wire in &page.nodes {
            if wire.i == 0 {
                continue;
            }
            let parent = if wire.p == 0 {
                None
            } else {
                // A parent that was skipped takes its subtree with it.
                match self.container(wire.p) {
                    Some(parent) => Some(parent),
                    None => continue,
                }
            };
            let Some(node) = self.create(wire, &mut fields) else {
                continue;
            };
            match parent {
                Some(parent) => {
                    if parent.append_child(&node).is_err() {
                        continue;
                    }
                }
                // The document has one element, the first the page names.
                None if root.is_none() && is_element(&node) => {
                    root = Some(node.clone().unchecked_into());
                }
                None => continue,
            }
            self.remember(wire, node);
        }
        let root = root.unwrap_or_else(|| {
            let html = self.html("html");
            let _ = html.append_child(&self.html("body"));
            html
        });
        self.set_root(&root);
        set_fields(fields);
        self.scroll = (page.x, page.y);
        self.rescroll();
    }

    /// Applies one change. Ops about nodes the mirror does not have (they
    /// were skipped, or the op is older than the page) do nothing.
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Kids { i, c, n } => self.kids(*i, c, n),
            Op::Attr { i, k, v } => self.attr(*i, k, v.as_deref()),
            Op::Text { i, x } => {
                if let Some(node) = self.nodes.get(i) {
                    if node.node_type() == Node::TEXT_NODE {
                        node.set_text_content(Some(x));
                    }
                }
            }
            Op::Value { i, v, c } => {
                if let Some(element) = self.element(*i) {
                    set_fields(vec![Field {
                        element,
                        value: v.clone(),
                        checked: *c,
                    }]);
                }
            }
            Op::Scroll { i: 0, x, y } => {
                self.scroll = (*x, *y);
                self.rescroll();
            }
            Op::Scroll { i, x, y } => {
                if let Some(element) = self.element(*i) {
                    element.set_scroll_left(*x);
                    element.set_scroll_top(*y);
                }
            }
            // The console's layer draws these (see `MirrorView`).
            Op::Viewport { .. } | Op::Pointer { .. } | Op::Click { .. } => {}
        }
    }

    /// After a frame of ops: drops nodes that left the page for good from
    /// the map, once it has grown well past what the page holds.
    pub fn end_batch(&mut self) {
        if self.nodes.len() > self.prune_at {
            self.nodes.retain(|_, node| node.is_connected());
            let nodes = &self.nodes;
            self.redacted.retain(|i| nodes.contains_key(i));
            self.prune_at = (self.nodes.len() * 2).max(MIN_PRUNE);
        }
    }

    /// Scrolls the frame to the page's scroll offset again (it may not
    /// have been reachable before the page's stylesheets loaded).
    pub fn rescroll(&self) {
        if let Some(window) = self.doc.default_view() {
            let (x, y) = self.scroll;
            window.scroll_to_with_x_and_y(f64::from(x), f64::from(y));
        }
    }

    fn forget(&mut self) {
        self.nodes.clear();
        self.redacted.clear();
        self.ours.clear();
        self.prune_at = MIN_PRUNE;
    }

    fn remember(&mut self, wire: &Wire, node: Node) {
        if wire.r.is_some() {
            self.redacted.insert(wire.i);
        } else {
            self.redacted.remove(&wire.i);
        }
        self.nodes.insert(wire.i, node);
    }

    /// Element `i`, if the mirror has it and it is not a redacted box.
    fn element(&self, i: u32) -> Option<Element> {
        if self.redacted.contains(&i) {
            return None;
        }
        let node = self.nodes.get(&i)?;
        is_element(node).then(|| node.clone().unchecked_into())
    }

    /// Element `i`, if it may have children from the visitor.
    fn container(&self, i: u32) -> Option<Node> {
        self.element(i).map(Into::into)
    }

    /// Creates the node `wire` describes, or `None` if it may not exist.
    fn create(&self, wire: &Wire, fields: &mut Vec<Field>) -> Option<Node> {
        let name = match (&wire.e, &wire.x) {
            (None, Some(text)) => return Some(self.doc.create_text_node(text).into()),
            (Some(name), None) => name,
            _ => return None,
        };
        if let Some(r) = wire.r {
            return redacted_element_allowed(name).then(|| self.redacted_box(r).into());
        }
        if !element_allowed(name, &wire.a) || never_created(name) {
            return None;
        }
        let name = match wire.ns {
            Ns::Html => name.to_ascii_lowercase(),
            // SVG and MathML names are case-sensitive (`foreignObject`).
            _ => name.clone(),
        };
        let element = self
            .doc
            .create_element_ns(Some(wire.ns.uri()), &name)
            .ok()?;
        for (k, v) in &wire.a {
            set_attribute(&element, k, v);
        }
        if wire.v.is_some() || wire.c.is_some() {
            fields.push(Field {
                element: element.clone(),
                value: wire.v.clone(),
                checked: wire.c,
            });
        }
        Some(element.into())
    }

    /// A box of the element's size, with nothing of the element in it.
    fn redacted_box(&self, r: Redacted) -> Element {
        let element = self.html("div");
        let _ = element.set_attribute(REDACTED, "");
        let style = style_of(&element);
        for (property, value) in [
            ("width", [&r.w.to_string(), "px"].concat()),
            ("height", [&r.h.to_string(), "px"].concat()),
            (
                "display",
                if r.b { "block" } else { "inline-block" }.to_owned(),
            ),
        ] {
            let _ = style.set_property_with_priority(property, &value, "important");
        }
        element
    }

    fn kids(&mut self, i: u32, c: &[u32], new: &[Wire]) {
        let parent: Node = if i == 0 {
            self.doc.clone().into()
        } else {
            match self.container(i) {
                Some(parent) => parent,
                None => return,
            }
        };
        let mut fields = Vec::new();
        let mut created = HashSet::<u32, Ids>::default();
        for wire in new {
            if wire.i == 0 || (wire.p != i && !created.contains(&wire.p)) {
                continue;
            }
            let Some(node) = self.create(wire, &mut fields) else {
                continue;
            };
            if wire.p != i {
                match self.container(wire.p) {
                    Some(p) if p.append_child(&node).is_ok() => {}
                    _ => continue,
                }
            }
            created.insert(wire.i);
            self.remember(wire, node);
        }
        if i == 0 {
            // The document's one element: the first element listed.
            let root = c
                .iter()
                .filter_map(|id| self.nodes.get(id))
                .find(|node| is_element(node))
                .cloned();
            if let Some(root) = root {
                if self.doc.document_element().map(Node::from).as_ref() != Some(&root) {
                    self.set_root(root.unchecked_ref());
                }
            }
        } else {
            self.set_children(&parent, c);
        }
        set_fields(fields);
    }

    /// Makes `parent`'s children exactly the nodes `ids` (those the mirror
    /// has), in order, moving nodes that are elsewhere and removing the
    /// rest, except the mirror's own.
    fn set_children(&self, parent: &Node, ids: &[u32]) {
        let guard = self
            .ours
            .iter()
            .any(|o| o.parent_node().as_ref() == Some(parent));
        let theirs = |mut node: Option<Node>| {
            while let Some(n) = &node {
                if !(guard && self.ours.contains(n)) {
                    break;
                }
                node = n.next_sibling();
            }
            node
        };
        let mut seen = HashSet::<u32, Ids>::default();
        let mut anchor = theirs(parent.first_child());
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let Some(child) = self.nodes.get(id) else {
                continue;
            };
            if anchor.as_ref() == Some(child) {
                anchor = theirs(child.next_sibling());
            } else {
                // Fails for a node that contains `parent`: skipped.
                let _ = parent.insert_before(child, anchor.as_ref());
            }
        }
        while let Some(node) = anchor {
            anchor = node.next_sibling();
            if !(guard && self.ours.contains(&node)) {
                let _ = parent.remove_child(&node);
            }
        }
    }

    fn attr(&mut self, i: u32, k: &str, v: Option<&str>) {
        let Some(element) = self.element(i) else {
            return;
        };
        if k.eq_ignore_ascii_case("inert") && self.is_root(&element) {
            return;
        }
        match v {
            Some(v) => {
                // A stylesheet link stays one (else it would preload or
                // prefetch whatever the new `rel` asks for).
                if k.eq_ignore_ascii_case("rel")
                    && element.local_name() == "link"
                    && !element_allowed("link", &[("rel".into(), v.into())])
                {
                    return;
                }
                set_attribute(&element, k, v);
            }
            None => {
                if SKIPPED_ATTRIBUTES.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                    return;
                }
                let _ = match namespace_of(k) {
                    Some(ns) => element.remove_attribute_ns(Some(ns), local_part(k)),
                    None => element.remove_attribute(k),
                };
            }
        }
    }

    fn is_root(&self, element: &Element) -> bool {
        self.doc.document_element().as_ref() == Some(element)
    }

    /// Makes `root` the document's element, with the mirror's additions:
    /// `<base>` so the page's relative URLs (in inline CSS too) resolve
    /// against the visitor's page, our style, the page's constructed
    /// sheets, and `inert` so neither focus nor a click gets into it.
    fn set_root(&mut self, root: &Element) {
        self.ours.clear();
        let head = match first_child_named(root, "head") {
            Some(head) => head,
            None => {
                let head = self.html("head");
                let _ = root.insert_before(&head, root.first_child().as_ref());
                self.ours.push(head.clone().into());
                head
            }
        };
        let first = head.first_child();
        if is_web_url(&self.url) {
            let base = self.html("base");
            let _ = base.set_attribute("href", &self.url);
            let _ = head.insert_before(&base, first.as_ref());
            self.ours.push(base.into());
        }
        let style = self.html("style");
        style.set_text_content(Some(MIRROR_CSS));
        let _ = head.insert_before(&style, first.as_ref());
        self.ours.push(style.into());
        // Constructed sheets come after the document's own in the cascade:
        // last in the root element, after the body.
        for sheet in &self.sheets {
            let style = self.html("style");
            style.set_text_content(Some(sheet));
            let _ = root.append_child(&style);
            self.ours.push(style.into());
        }
        let _ = root.set_attribute("inert", "");
        let _ = match self.doc.document_element() {
            Some(old) => self.doc.replace_child(root, &old),
            None => self.doc.append_child(root),
        };
    }

    fn html(&self, name: &str) -> Element {
        // Only our own literal names come here, which cannot fail.
        self.doc
            .create_element_ns(Some(Ns::Html.uri()), name)
            .expect("valid tag name")
    }
}

fn never_created(name: &str) -> bool {
    NEVER_CREATED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn is_element(node: &Node) -> bool {
    node.node_type() == Node::ELEMENT_NODE
}

fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

fn first_child_named(parent: &Element, name: &str) -> Option<Element> {
    let mut child = parent.first_element_child();
    while let Some(c) = child {
        if c.local_name() == name {
            return Some(c);
        }
        child = c.next_element_sibling();
    }
    None
}

/// Sets attribute `k` = `v` if the rules let it through.
fn set_attribute(element: &Element, k: &str, v: &str) {
    if !attribute_allowed(k, v) || SKIPPED_ATTRIBUTES.iter().any(|s| s.eq_ignore_ascii_case(k)) {
        return;
    }
    // An invalid name throws; it is skipped like a refused one.
    let _ = match namespace_of(k) {
        Some(ns) => element.set_attribute_ns(Some(ns), k, v),
        None => element.set_attribute(k, v),
    };
}

/// `xlink:href` and `xml:lang` only work in their namespaces (SVG).
fn namespace_of(name: &str) -> Option<&'static str> {
    let (prefix, _) = name.split_once(':')?;
    if prefix.eq_ignore_ascii_case("xlink") {
        Some(XLINK)
    } else if prefix.eq_ignore_ascii_case("xml") {
        Some(XML)
    } else {
        None
    }
}

fn select_by_text(select: &Element, text: &str) {
    let options = js_sys::Reflect::get(select, &"options".into()).unwrap_or(JsValue::UNDEFINED);
    let count = js_sys::Reflect::get(&options, &"length".into())
        .ok()
        .and_then(|n| n.as_f64())
        .unwrap_or(0.0) as u32;
    let index = (0..count)
        .find(|&i| {
            js_sys::Reflect::get_u32(&options, i)
                .and_then(|o| js_sys::Reflect::get(&o, &"text".into()))
                .ok()
                .and_then(|t| t.as_string())
                .is_some_and(|t| t == text)
        })
        .map_or(-1.0, f64::from);
    let _ = js_sys::Reflect::set(select, &"selectedIndex".into(), &JsValue::from_f64(index));
}

fn local_part(name: &str) -> &str {
    name.split_once(':').map_or(name, |(_, local)| local)
}

fn style_of(element: &Element) -> CssStyleDeclaration {
    js_sys::Reflect::get(element, &"style".into())
        .unwrap_or(JsValue::UNDEFINED)
        .unchecked_into()
}

/// Sets values as properties, as the visitor typing would: the `value`
/// attribute never travels, and `textarea` and `select` have none. A
/// `select`'s value is the chosen option's text (option values never
/// travel), so the option is picked by its text.
fn set_fields(fields: Vec<Field>) {
    for field in fields {
        if let Some(value) = &field.value {
            if field.element.local_name() == "select" {
                select_by_text(&field.element, value);
            } else {
                let _ = js_sys::Reflect::set(
                    &field.element,
                    &"value".into(),
                    &JsValue::from_str(value),
                );
            }
        }
        if let Some(checked) = field.checked {
            let _ = js_sys::Reflect::set(
                &field.element,
                &"checked".into(),
                &JsValue::from_bool(checked),
            );
        }
    }
}
