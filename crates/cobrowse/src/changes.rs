//! Changes to the mirrored page as protocol ops: the `MutationObserver`'s
//! records of one batch and the visitor's input, scrolling and pointer,
//! turned into at most one list of [`Op`]s per flush.
//!
//! Child lists are resent whole for each changed parent ([`Op::Kids`]),
//! which holds up against any mix of inserts, removals and moves: every
//! node added or removed in the batch loses its id first, so a node that
//! moved is written fresh where it is now, and the old one disappears from
//! its old parent's list.
//!
//! Before anything about an element is sent, its redaction is checked
//! again as the page is now. When it changed (a redact attribute or class
//! was added, a field became a password field, text appeared in an element
//! of a private-by-default page), the element is written again through its
//! parent's child list instead — as a box, or in full — and nothing else
//! about it is sent.

use crate::policy::Class;
use crate::serialize::{field_state, page_scroll, Serializer};
use agent_assist_protocol::mirror::{Op, Page};
use js_sys::Array;
use wasm_bindgen::JsCast;
use web_sys::{CssStyleSheet, Element, MutationRecord, Node, NodeList};

/// Namespaced attributes, by prefix (`MutationRecord` gives the local name).
const ATTRIBUTE_NAMESPACES: &[(&str, &str)] = &[
    ("http://www.w3.org/1999/xlink", "xlink:"),
    ("http://www.w3.org/XML/1998/namespace", "xml:"),
    ("http://www.w3.org/2000/xmlns/", "xmlns:"),
];

/// Most clicks kept per flush (a flush is one animation frame).
const MAX_CLICKS: usize = 8;

pub struct Tracker {
    pub ser: Serializer,
    pending: Pending,
}

/// What the visitor did since the last flush, coalesced.
#[derive(Default)]
struct Pending {
    /// Form fields whose value changed, with the id they had then.
    values: Vec<(u32, Element)>,
    /// Scrolled elements with their ids (`None`: the page, id 0).
    scrolls: Vec<(u32, Option<Element>)>,
    viewport: bool,
    pointer: Option<(i32, i32)>,
    clicks: Vec<(i32, i32)>,
}

/// What to do about an element that has an id, as the page is now.
enum Verdict {
    /// Its state in the mirror is still right: ops about it may be sent.
    Keep,
    /// This element (itself or an ancestor) must be written again.
    Rewrite(Element),
    /// Send nothing about it.
    Drop,
}

impl Tracker {
    pub fn new(ser: Serializer) -> Tracker {
        Tracker {
            ser,
            pending: Pending::default(),
        }
    }

    /// A snapshot of the page, with new ids; what was pending is in it.
    pub fn snapshot(&mut self, own_sheet: Option<&CssStyleSheet>) -> Page {
        self.pending = Pending::default();
        self.ser.snapshot(own_sheet)
    }

    /// Forgets everything: nothing is mirrored until the next snapshot.
    pub fn reset(&mut self) {
        self.pending = Pending::default();
        self.ser.reset();
    }

    /// The visitor changed a form field (an `input` or `change` event).
    pub fn note_value(&mut self, el: Element) {
        if let Some(id) = self.ser.id(&el) {
            if !self.pending.values.iter().any(|(i, _)| *i == id) {
                self.pending.values.push((id, el));
            }
        }
    }

    /// The page (`None`) or an element scrolled.
    pub fn note_scroll(&mut self, el: Option<Element>) {
        let id = match &el {
            None => Some(0),
            Some(el) => self.ser.id(el),
        };
        if let Some(id) = id {
            if !self.pending.scrolls.iter().any(|(i, _)| *i == id) {
                self.pending.scrolls.push((id, el));
            }
        }
    }

    pub fn note_viewport(&mut self) {
        self.pending.viewport = true;
    }

    pub fn note_pointer(&mut self, x: i32, y: i32) {
        self.pending.pointer = Some((x, y));
    }

    pub fn note_click(&mut self, x: i32, y: i32) {
        if self.pending.clicks.len() < MAX_CLICKS {
            self.pending.clicks.push((x, y));
        }
    }

    /// The ops for `records` (the observer's, in order) and for what the
    /// visitor did since the last flush. Empty when nothing travels.
    pub fn ops(&mut self, records: &Array) -> Vec<Op> {
        self.ser.refresh_base();
        let pending = std::mem::take(&mut self.pending);
        let mut dirty = Dirty::default();
        let mut attrs: Vec<(Element, String)> = Vec::new();
        let mut attr_seen: Vec<(u32, String)> = Vec::new();
        let mut texts: Vec<Node> = Vec::new();
        let mut text_seen: Vec<u32> = Vec::new();
        let mut values = pending.values;

        // 1. Forget every node that was added or removed, and note what changed.
        for record in records.iter() {
            let record: MutationRecord = record.unchecked_into();
            let Some(target) = record.target() else {
                continue;
            };
            match record.type_().as_str() {
                "childList" => {
                    for_each(&record.removed_nodes(), |n| self.ser.forget(n));
                    // Below an added node, ids may be left from where it was
                    // before (a move into a redacted area must not keep them).
                    for_each(&record.added_nodes(), |n| self.ser.forget_tree(n));
                    if let Some(id) = self.ser.id(&target) {
                        dirty.add(id, target);
                    }
                }
                "attributes" => {
                    let Some(local) = record.attribute_name() else {
                        continue;
                    };
                    let el: Element = target.unchecked_into();
                    if local == "type" {
                        self.ser
                            .policy
                            .note_old_type(&el, record.old_value().as_deref());
                    }
                    let Some(id) = self.ser.id(&el) else {
                        continue;
                    };
                    if local == "value" || local == "checked" {
                        // The default value or state: the live one may follow it.
                        if !values.iter().any(|(i, _)| *i == id) {
                            values.push((id, el.clone()));
                        }
                    }
                    let name = match record.attribute_namespace() {
                        None => local,
                        Some(ns) => match ATTRIBUTE_NAMESPACES.iter().find(|(u, _)| *u == ns) {
                            Some((_, prefix)) => [prefix, local.as_str()].concat(),
                            None => continue,
                        },
                    };
                    if insert_sorted(&mut attr_seen, (id, name.clone())) {
                        attrs.push((el, name));
                    }
                }
                "characterData" => {
                    if let Some(id) = self.ser.id(&target) {
                        if insert_sorted(&mut text_seen, id) {
                            texts.push(target);
                        }
                    }
                }
                _ => {}
            }
        }

        // 2. Check redaction again where something changed; note what must
        // be written again.
        let mut changed_attrs = Vec::new();
        // Each element's verdict once: whether its attributes may be sent.
        let mut checked: Vec<(u32, bool)> = Vec::new();
        for (el, name) in attrs {
            let Some(id) = self.live_id(&el) else {
                continue;
            };
            let keep = match checked.binary_search_by_key(&id, |c| c.0) {
                Ok(at) => checked[at].1,
                Err(at) => {
                    let keep = match self.verdict(&el) {
                        Verdict::Keep => true,
                        Verdict::Rewrite(x) => {
                            self.rewrite(&x, &mut dirty);
                            false
                        }
                        Verdict::Drop => false,
                    };
                    // `.private input`: a class on an ancestor can redact
                    // what is below it.
                    if keep
                        && !self.ser.policy.redact_list.is_empty()
                        && el.first_element_child().is_some()
                    {
                        for below in self.ser.policy.redacted_below(&el) {
                            if self.ser.id(&below).is_some() && !self.ser.is_box(&below) {
                                self.rewrite(&below, &mut dirty);
                            }
                        }
                    }
                    checked.insert(at, (id, keep));
                    keep
                }
            };
            if keep && !self.ser.is_box(&el) {
                changed_attrs.push((id, el, name));
            }
        }
        let mut changed_texts = Vec::new();
        for text in texts {
            let (Some(id), Some(parent)) = (self.live_id(&text), text.parent_element()) else {
                continue;
            };
            if self.ser.id(&parent).is_none() || self.ser.is_box(&parent) {
                continue;
            }
            match self.verdict(&parent) {
                Verdict::Keep => changed_texts.push((id, text)),
                Verdict::Rewrite(x) => self.rewrite(&x, &mut dirty),
                Verdict::Drop => {}
            }
        }
        let mut changed_values = Vec::new();
        for (id, el) in values {
            if self.live_id(&el) != Some(id) || self.ser.is_box(&el) {
                continue;
            }
            match self.verdict(&el) {
                Verdict::Keep => changed_values.push((id, el)),
                Verdict::Rewrite(x) => self.rewrite(&x, &mut dirty),
                Verdict::Drop => {}
            }
        }

        // 3. The child lists of changed parents; nodes written here are new.
        let fresh = self.ser.next_id();
        let mut ops = Vec::new();
        let mut k = 0;
        while let Some((pid, parent)) = dirty.list.get(k).cloned() {
            k += 1;
            if pid >= fresh || self.live_id(&parent) != Some(pid) {
                continue;
            }
            let mut unredacted = false;
            if let Some(el) = parent.dyn_ref::<Element>() {
                match self.verdict(el) {
                    Verdict::Keep => {}
                    Verdict::Rewrite(x) => {
                        self.rewrite(&x, &mut dirty);
                        continue;
                    }
                    Verdict::Drop => continue,
                }
                if self.ser.is_box(el) || el.local_name() == "textarea" {
                    continue;
                }
                unredacted = self.ser.policy.in_unredacted(el);
            }
            let mut c = Vec::new();
            let mut n = Vec::new();
            let mut child = parent.first_child();
            while let Some(node) = child {
                let id = match self.ser.id(&node) {
                    Some(id) => Some(id),
                    None => self.ser.write_tree(&node, pid, unredacted, &mut n),
                };
                c.extend(id);
                child = node.next_sibling();
            }
            ops.push(Op::Kids { i: pid, c, n });
        }

        // 4. Attributes, text and values of nodes the mirror already had.
        let known = |ser: &Serializer, node: &Node, id: u32| id < fresh && ser.id(node) == Some(id);
        for (id, el, name) in changed_attrs {
            if !known(&self.ser, &el, id) || self.ser.is_box(&el) {
                continue;
            }
            // A value that may not travel is sent as a removal (the old one
            // must not stay), if the attribute itself may travel at all.
            let v = el
                .get_attribute(&name)
                .and_then(|value| self.ser.attribute(&name, value));
            if v.is_none() && self.ser.attribute(&name, String::new()).is_none() {
                continue;
            }
            ops.push(Op::Attr { i: id, k: name, v });
        }
        for (id, text) in changed_texts {
            let parent_ok = text
                .parent_element()
                .is_some_and(|p| self.ser.id(&p).is_some() && !self.ser.is_box(&p));
            if known(&self.ser, &text, id) && parent_ok {
                ops.push(Op::Text {
                    i: id,
                    x: text.node_value().unwrap_or_default(),
                });
            }
        }
        for (id, el) in changed_values {
            if !known(&self.ser, &el, id) || self.ser.is_box(&el) {
                continue;
            }
            let (v, c) = field_state(&el, &el.local_name());
            if v.is_some() || c.is_some() {
                ops.push(Op::Value { i: id, v, c });
            }
        }

        // 5. Scrolling, viewport and pointer.
        for (id, el) in pending.scrolls {
            match el {
                None => {
                    let (x, y) = page_scroll();
                    ops.push(Op::Scroll { i: 0, x, y });
                }
                Some(el) => {
                    if self.live_id(&el) == Some(id) && !self.ser.is_box(&el) {
                        ops.push(Op::Scroll {
                            i: id,
                            x: el.scroll_left(),
                            y: el.scroll_top(),
                        });
                    }
                }
            }
        }
        if pending.viewport {
            if let Some(win) = web_sys::window() {
                let num = |v: Result<wasm_bindgen::JsValue, _>| {
                    v.ok().and_then(|v| v.as_f64()).unwrap_or(0.0).round() as u32
                };
                ops.push(Op::Viewport {
                    w: num(win.inner_width()),
                    h: num(win.inner_height()),
                });
            }
        }
        if let Some((x, y)) = pending.pointer {
            ops.push(Op::Pointer { x, y });
        }
        for (x, y) in pending.clicks {
            ops.push(Op::Click { x, y });
        }
        ops
    }

    /// `node`'s id if it has one and is in the page.
    fn live_id(&self, node: &Node) -> Option<u32> {
        if node.is_connected() {
            self.ser.id(node)
        } else {
            None
        }
    }

    /// Whether what the mirror has of `el` (which has an id) is still right.
    fn verdict(&self, el: &Element) -> Verdict {
        let policy = &self.ser.policy;
        if let Some(ancestor) = policy.redacted_ancestor(el) {
            return if self.ser.id(&ancestor).is_some() && !self.ser.is_box(&ancestor) {
                Verdict::Rewrite(ancestor)
            } else {
                Verdict::Drop
            };
        }
        let now = policy.classify(el, policy.in_unredacted(el));
        let was = if self.ser.is_box(el) {
            Class::Box
        } else {
            Class::Visible
        };
        if now != was
            || (policy.private && policy.starts_unredacted(el) != self.ser.started_unredacted(el))
        {
            Verdict::Rewrite(el.clone())
        } else {
            Verdict::Keep
        }
    }

    /// Writes `el` again, through its parent's child list.
    fn rewrite(&self, el: &Element, dirty: &mut Dirty) {
        self.ser.forget(el);
        if let Some(parent) = el.parent_node() {
            if let Some(id) = self.ser.id(&parent) {
                dirty.list.push((id, parent));
            }
        }
    }
}

/// Parents whose child lists changed, each once from the records (a
/// rewrite may add one again, to be sent after its first list).
#[derive(Default)]
struct Dirty {
    list: Vec<(u32, Node)>,
    seen: Vec<u32>,
}

impl Dirty {
    fn add(&mut self, id: u32, node: Node) {
        if insert_sorted(&mut self.seen, id) {
            self.list.push((id, node));
        }
    }
}

fn for_each(list: &NodeList, mut f: impl FnMut(&Node)) {
    for k in 0..list.length() {
        if let Some(node) = list.item(k) {
            f(&node);
        }
    }
}

/// Adds `item` to a set kept as a sorted vector (a batch's sets are small,
/// and this is much less code in the wasm than a `BTreeSet`); false if it
/// was there.
fn insert_sorted<T: Ord>(set: &mut Vec<T>, item: T) -> bool {
    match set.binary_search(&item) {
        Ok(_) => false,
        Err(at) => {
            set.insert(at, item);
            true
        }
    }
}
