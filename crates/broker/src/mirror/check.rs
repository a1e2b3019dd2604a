//! The broker's checks on what a visitor's page sends, before anything is
//! kept or passed on to the agent.
//!
//! The visitor's browser already applies the privacy rules of
//! [`agent_assist_protocol::mirror`]; the broker applies them again, so a
//! modified or buggy page cannot make the agent's browser load, run or see
//! what the rules keep out. A frame that breaks one is refused whole (the
//! socket is then closed). A page the site does not share is passed on as
//! `hidden`, and the changes that follow it are dropped.
//!
//! What is passed on is the checked frame written out again, not the text
//! as received: fields the checks did not look at (unknown ones, duplicate
//! keys another parser might read differently) cannot travel.
//!
//! Beyond the per-frame rules, the broker remembers, for the page being
//! shown, which elements are redacted and which are password, hidden or
//! file inputs, so that later changes cannot put content into a redacted
//! box or send the value of such a field.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use agent_assist_protocol::mirror::{
    attribute_allowed, element_allowed, page_shared, redacted_element_allowed, Node, Op, Page, Up,
    View,
};
use url::Url;

use crate::config::Site;

/// Why a frame was refused, for the log. It names rules and node ids,
/// never the frame's content.
pub type Refusal = Cow<'static, str>;

/// What to do with a frame that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A new page (or `hidden`): pass on `text` and keep it as the snapshot,
    /// replacing the previous one and its changes.
    Page(String),
    /// Changes: pass on `text` and add it to the snapshot's log.
    Ops(String),
    /// Nothing to pass on: changes to a page that is not shown.
    Drop,
}

/// What the page currently shown is, as far as this connection told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Shown {
    /// No page yet on this connection.
    #[default]
    Nothing,
    Shared,
    Hidden,
}

/// The checks for one visitor connection, with what they remember of its
/// current page.
#[derive(Debug, Default)]
pub struct PageChecker {
    shown: Shown,
    /// Redacted elements of the page shown: nothing may be put in them, and
    /// none of their attributes, text or value travels.
    redacted: HashSet<u32>,
    /// Password, hidden and file inputs of the page shown: their value
    /// never travels.
    secret: HashSet<u32>,
}

impl PageChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `frame` (not a hello) from a page of `site`.
    pub fn check(&mut self, frame: Up, site: &Site) -> Result<Verdict, Refusal> {
        match frame {
            Up::Hello { .. } => Err("a second hello".into()),
            Up::Hidden => {
                self.show(Shown::Hidden);
                Ok(Verdict::Page(hidden()))
            }
            Up::Page(page) => self.page(page, site),
            Up::Ops { ops } => self.ops(ops),
        }
    }

    fn show(&mut self, shown: Shown) {
        self.shown = shown;
        self.redacted.clear();
        self.secret.clear();
    }

    fn page(&mut self, mut page: Page, site: &Site) -> Result<Verdict, Refusal> {
        let url = page_url(&page.url, site)?;
        let mut found = Found::default();
        check_nodes(&page.nodes, Top::Document, &mut HashSet::new(), &mut found)?;
        if !shared(&site.share_pages, url.path()) {
            self.show(Shown::Hidden);
            return Ok(Verdict::Page(hidden()));
        }
        self.show(Shown::Shared);
        self.redacted = found.redacted;
        self.secret = found.secret;
        // The URL as the checks read it (a browser's spelling already).
        page.url = url.into();
        Ok(Verdict::Page(to_json(&View::Page(page))))
    }

    fn ops(&mut self, ops: Vec<Op>) -> Result<Verdict, Refusal> {
        // New nodes' ids are unique across the whole frame.
        let mut seen = HashSet::new();
        for op in &ops {
            match op {
                Op::Kids { i, n, .. } => {
                    if self.redacted.contains(i) {
                        return Err(format!("children put into redacted element {i}").into());
                    }
                    let mut found = Found::default();
                    check_nodes(n, Top::Element(*i), &mut seen, &mut found)?;
                    self.redacted.extend(found.redacted);
                    self.secret.extend(found.secret);
                }
                Op::Attr { i, k, v } => {
                    if self.redacted.contains(i) {
                        return Err(format!("an attribute of redacted element {i}").into());
                    }
                    if !is_attribute_name(k) {
                        return Err(format!("an invalid attribute name on element {i}").into());
                    }
                    if let Some(v) = v {
                        if !attribute_allowed(k, v) {
                            return Err(format!("a forbidden attribute on element {i}").into());
                        }
                    }
                    if k.eq_ignore_ascii_case("type") {
                        if v.as_deref().is_some_and(is_secret_type) {
                            self.secret.insert(*i);
                        } else {
                            self.secret.remove(i);
                        }
                    }
                }
                Op::Text { i, .. } => {
                    if self.redacted.contains(i) {
                        return Err(format!("text of redacted element {i}").into());
                    }
                }
                Op::Value { i, v, .. } => {
                    if self.redacted.contains(i) {
                        return Err(format!("the value of redacted element {i}").into());
                    }
                    if self.secret.contains(i) && v.as_deref().is_some_and(|v| !v.is_empty()) {
                        return Err(
                            format!("the value of password, hidden or file input {i}").into()
                        );
                    }
                }
                Op::Scroll { .. } | Op::Viewport { .. } | Op::Pointer { .. } | Op::Click { .. } => {
                }
            }
        }
        if self.shown != Shown::Shared {
            return Ok(Verdict::Drop);
        }
        Ok(Verdict::Ops(to_json(&View::Ops { ops })))
    }
}

/// `{"t":"hidden"}`.
pub fn hidden() -> String {
    to_json(&View::Hidden)
}

fn to_json(view: &View) -> String {
    // Plain data with string keys: writing it out cannot fail.
    serde_json::to_string(view).unwrap_or_default()
}

/// The page's URL, if it is an absolute `http(s)` URL on one of the site's
/// origins, without credentials, query or fragment (which often carry
/// private data, and which the visitor's browser leaves out).
fn page_url(url: &str, site: &Site) -> Result<Url, Refusal> {
    let parsed = Url::parse(url).map_err(|_| "the page URL is not an absolute URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the page URL is not http or https".into());
    }
    if !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err("the page URL has user information, a query or a fragment".into());
    }
    if !site.allows_origin(&parsed.origin().ascii_serialization()) {
        return Err("the page URL is not on one of the site's origins".into());
    }
    Ok(parsed)
}

/// Whether a page at `path` (as a URL spells it) is shared. The path is
/// matched as it is and with its percent-escapes decoded, and must be
/// shared both ways: a server that decodes `/%61ccount` as `/account` does
/// not get around an exclusion of `/account/*`.
fn shared(patterns: &[String], path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    page_shared(patterns, path) && page_shared(patterns, &decoded)
}

/// Where the top nodes of a list hang.
#[derive(Debug, Clone, Copy)]
enum Top {
    /// A page: on the document (`p == 0`).
    Document,
    /// [`Op::Kids`]: on the element whose children change.
    Element(u32),
}

/// Ids of special elements among checked nodes.
#[derive(Debug, Default)]
struct Found {
    redacted: HashSet<u32>,
    secret: HashSet<u32>,
}

/// Checks a flat list of nodes (parents first): ids > 0 and not in `seen`,
/// each node's parent the list's top or an earlier element of the list that
/// is not redacted, an element or a text, and the privacy rules.
fn check_nodes(
    nodes: &[Node],
    top: Top,
    seen: &mut HashSet<u32>,
    found: &mut Found,
) -> Result<(), Refusal> {
    // Whether each earlier node of the list may have children.
    let mut parents: HashMap<u32, bool> = HashMap::with_capacity(nodes.len());
    for node in nodes {
        let i = node.i;
        if i == 0 {
            return Err("a node with id 0".into());
        }
        if !seen.insert(i) {
            return Err(format!("node id {i} used twice").into());
        }
        let parent_ok = match top {
            Top::Document => node.p == 0,
            Top::Element(top) => node.p == top,
        } || parents.get(&node.p).copied().unwrap_or(false);
        if !parent_ok {
            return Err(format!(
                "node {i}'s parent is not an earlier element of the frame (nor its top)"
            )
            .into());
        }
        let may_have_children = match (&node.e, &node.x) {
            (Some(name), None) => check_element(node, name, found)?,
            (None, Some(_)) => {
                if !node.a.is_empty()
                    || node.v.is_some()
                    || node.c.is_some()
                    || node.r.is_some()
                    || !node.ns.is_html()
                {
                    return Err(format!("text node {i} has element fields").into());
                }
                false
            }
            _ => return Err(format!("node {i} is not exactly one of element or text").into()),
        };
        parents.insert(i, may_have_children);
    }
    Ok(())
}

/// Checks element `node` named `name`; returns whether it may have children.
fn check_element(node: &Node, name: &str, found: &mut Found) -> Result<bool, Refusal> {
    let i = node.i;
    if node.r.is_some() {
        if !redacted_element_allowed(name) {
            return Err(format!("redacted element {i} has an invalid name").into());
        }
        if !node.a.is_empty() || node.v.is_some() || node.c.is_some() {
            return Err(format!("redacted element {i} has attributes, a value or a state").into());
        }
        found.redacted.insert(i);
        return Ok(false);
    }
    if !element_allowed(name, &node.a) {
        return Err(format!("element {i} is a forbidden element").into());
    }
    if !node.a.iter().all(|(k, v)| attribute_allowed(k, v)) {
        return Err(format!("element {i} has a forbidden attribute").into());
    }
    let secret = name.eq_ignore_ascii_case("input")
        && node
            .a
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("type") && is_secret_type(v));
    if secret {
        if node.v.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(format!("the value of password, hidden or file input {i}").into());
        }
        found.secret.insert(i);
    }
    Ok(true)
}

/// Input types whose value never travels.
fn is_secret_type(input_type: &str) -> bool {
    let t = input_type.trim();
    ["password", "hidden", "file"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(t))
}

/// The attribute names [`attribute_allowed`] accepts the spelling of.
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_assist_protocol::mirror::Redacted;

    fn site() -> Site {
        let mut site = Site::new("s", "S", ["https://shop.example"]);
        site.share_pages = vec!["/*".into(), "!/account/*".into()];
        site
    }

    fn el(i: u32, p: u32, name: &str, a: &[(&str, &str)]) -> Node {
        Node {
            i,
            p,
            e: Some(name.into()),
            a: a.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Node::default()
        }
    }

    fn text(i: u32, p: u32, x: &str) -> Node {
        Node {
            i,
            p,
            x: Some(x.into()),
            ..Node::default()
        }
    }

    fn redacted(i: u32, p: u32, name: &str) -> Node {
        Node {
            r: Some(Redacted {
                w: 10,
                h: 10,
                b: false,
            }),
            ..el(i, p, name, &[])
        }
    }

    fn page(url: &str, nodes: Vec<Node>) -> Up {
        Up::Page(Page {
            url: url.into(),
            title: "T".into(),
            w: 800,
            h: 600,
            x: 0,
            y: 0,
            nodes,
            sheets: vec![],
        })
    }

    fn body() -> Vec<Node> {
        vec![
            el(1, 0, "html", &[]),
            el(2, 1, "body", &[("class", "x")]),
            text(3, 2, "hello"),
        ]
    }

    fn ops(ops: Vec<Op>) -> Up {
        Up::Ops { ops }
    }

    fn refused(checker: &mut PageChecker, frame: Up) -> String {
        checker
            .check(frame, &site())
            .expect_err("the frame should be refused")
            .into_owned()
    }

    fn shared_checker() -> PageChecker {
        let mut c = PageChecker::new();
        let v = c.check(page("https://shop.example/", body()), &site());
        assert!(matches!(v, Ok(Verdict::Page(_))));
        c
    }

    #[test]
    fn a_good_page_passes_as_written_out_again() {
        let mut c = PageChecker::new();
        let Verdict::Page(text) = c
            .check(page("https://shop.example/cart", body()), &site())
            .unwrap()
        else {
            panic!("a page")
        };
        let back: View = serde_json::from_str(&text).unwrap();
        let View::Page(p) = back else {
            panic!("a page")
        };
        assert_eq!(p.url, "https://shop.example/cart");
        assert_eq!(p.nodes, body());
        // Its changes pass too.
        let v = c
            .check(ops(vec![Op::Pointer { x: 1, y: 2 }]), &site())
            .unwrap();
        assert_eq!(
            v,
            Verdict::Ops(r#"{"t":"ops","ops":[{"o":"pointer","x":1,"y":2}]}"#.into())
        );
    }

    #[test]
    fn pages_that_are_not_shared_pass_as_hidden_and_their_changes_are_dropped() {
        let mut c = PageChecker::new();
        for path in ["/account/card", "/%61ccount/card"] {
            let v = c
                .check(
                    page(&format!("https://shop.example{path}"), body()),
                    &site(),
                )
                .unwrap();
            assert_eq!(v, Verdict::Page(r#"{"t":"hidden"}"#.into()), "{path}");
            let v = c
                .check(
                    ops(vec![Op::Text {
                        i: 3,
                        x: "x".into(),
                    }]),
                    &site(),
                )
                .unwrap();
            assert_eq!(v, Verdict::Drop);
        }
        // The visitor's own `hidden` too; changes before any page as well.
        assert_eq!(
            c.check(Up::Hidden, &site()).unwrap(),
            Verdict::Page(hidden())
        );
        let mut fresh = PageChecker::new();
        let v = fresh
            .check(ops(vec![Op::Click { x: 1, y: 1 }]), &site())
            .unwrap();
        assert_eq!(v, Verdict::Drop);
        // A hidden page is still checked: a script is refused anyway.
        let bad = vec![el(1, 0, "html", &[]), el(2, 1, "script", &[])];
        refused(&mut c, page("https://shop.example/account/x", bad));
    }

    #[test]
    fn page_urls_must_be_on_the_sites_origins_without_query_or_fragment() {
        for url in [
            "/relative",
            "https://evil.example/",
            "http://shop.example/",
            "https://shop.example:8443/",
            "https://shop.example/?q=1",
            "https://shop.example/#top",
            "https://user@shop.example/",
            "javascript:alert(1)",
            "data:text/html,x",
        ] {
            let e = refused(&mut PageChecker::new(), page(url, body()));
            assert!(e.contains("URL"), "{url}: {e}");
            assert!(!e.contains(url), "the URL is not quoted: {e}");
        }
        // A default port or upper case is the same origin.
        let mut c = PageChecker::new();
        let v = c
            .check(page("HTTPS://Shop.Example:443/a/../b", body()), &site())
            .unwrap();
        let Verdict::Page(text) = v else { panic!() };
        assert!(text.contains(r#""url":"https://shop.example/b""#), "{text}");
    }

    #[test]
    fn forbidden_elements_and_attributes_are_refused() {
        let cases: Vec<Vec<Node>> = vec![
            vec![el(1, 0, "script", &[])],
            vec![el(1, 0, "html", &[]), el(2, 1, "iframe", &[])],
            vec![el(1, 0, "link", &[("rel", "preload")])],
            vec![el(1, 0, "div", &[("onclick", "x()")])],
            vec![el(1, 0, "a", &[("href", "javascript:alert(1)")])],
            vec![el(
                1,
                0,
                "div",
                &[("style", "background:url(javascript:x)")],
            )],
            vec![el(1, 0, "input", &[("value", "secret")])],
            vec![el(1, 0, "div", &[("a b", "x")])],
        ];
        for nodes in cases {
            let e = refused(
                &mut PageChecker::new(),
                page("https://shop.example/", nodes),
            );
            assert!(e.contains("forbidden"), "{e}");
        }
        let mut c = shared_checker();
        let e = refused(
            &mut c,
            ops(vec![Op::Kids {
                i: 2,
                c: vec![9],
                n: vec![el(9, 2, "script", &[])],
            }]),
        );
        assert!(e.contains("forbidden"), "{e}");
        for (k, v) in [
            ("onclick", "x()"),
            ("href", " javascript:x"),
            ("srcdoc", ""),
        ] {
            let mut c = shared_checker();
            refused(
                &mut c,
                ops(vec![Op::Attr {
                    i: 2,
                    k: k.into(),
                    v: Some(v.into()),
                }]),
            );
        }
        // Removing an attribute needs only a valid name.
        let mut c = shared_checker();
        let remove = |k: &str| {
            ops(vec![Op::Attr {
                i: 2,
                k: k.into(),
                v: None,
            }])
        };
        assert!(c.check(remove("onclick"), &site()).is_ok());
        refused(&mut c, remove("a\"b"));
    }

    #[test]
    fn the_tree_must_be_well_formed() {
        let cases: Vec<Vec<Node>> = vec![
            vec![el(0, 0, "html", &[])],
            vec![el(1, 0, "html", &[]), el(1, 0, "body", &[])],
            // A parent that comes later, or does not exist.
            vec![el(1, 2, "html", &[]), el(2, 0, "body", &[])],
            vec![el(1, 0, "html", &[]), el(2, 7, "body", &[])],
            // Text cannot have children.
            vec![text(1, 0, "x"), el(2, 1, "b", &[])],
            // A redacted box has none either.
            vec![redacted(1, 0, "div"), text(2, 1, "card number")],
            // Neither or both of element and text.
            vec![Node {
                i: 1,
                ..Node::default()
            }],
            vec![Node {
                x: Some("x".into()),
                ..el(1, 0, "b", &[])
            }],
            // Text with element fields.
            vec![Node {
                v: Some("x".into()),
                ..text(1, 0, "x")
            }],
            // A redacted box with what it hides.
            vec![Node {
                v: Some("4111".into()),
                ..redacted(1, 0, "input")
            }],
            vec![Node {
                a: vec![("title".into(), "x".into())],
                ..redacted(1, 0, "div")
            }],
        ];
        for nodes in cases {
            refused(
                &mut PageChecker::new(),
                page("https://shop.example/", nodes),
            );
        }
        // In changes, the top nodes hang on the changed element, and ids are
        // unique across the frame.
        let kids = |i: u32, p: u32, id: u32| Op::Kids {
            i,
            c: vec![id],
            n: vec![text(id, p, "x")],
        };
        assert!(shared_checker()
            .check(ops(vec![kids(2, 2, 9), kids(2, 2, 10)]), &site())
            .is_ok());
        refused(&mut shared_checker(), ops(vec![kids(2, 1, 9)]));
        refused(&mut shared_checker(), ops(vec![kids(2, 0, 9)]));
        refused(
            &mut shared_checker(),
            ops(vec![kids(2, 2, 9), kids(1, 1, 9)]),
        );
        // Redacted elements may travel as boxes (even those that never
        // travel whole).
        let nodes = vec![el(1, 0, "html", &[]), redacted(2, 1, "iframe")];
        assert!(PageChecker::new()
            .check(page("https://shop.example/", nodes), &site())
            .is_ok());
    }

    #[test]
    fn redacted_boxes_and_secret_fields_stay_empty_in_later_changes() {
        let nodes = vec![
            el(1, 0, "html", &[]),
            redacted(2, 1, "div"),
            el(3, 1, "input", &[("type", "Password")]),
            el(4, 1, "input", &[("type", "text")]),
        ];
        let start = || {
            let mut c = PageChecker::new();
            c.check(page("https://shop.example/", nodes.clone()), &site())
                .unwrap();
            c
        };
        let value = |i: u32, v: &str| Op::Value {
            i,
            v: Some(v.into()),
            c: None,
        };
        refused(
            &mut start(),
            ops(vec![Op::Kids {
                i: 2,
                c: vec![9],
                n: vec![text(9, 2, "secret")],
            }]),
        );
        refused(&mut start(), ops(vec![value(2, "4111")]));
        refused(
            &mut start(),
            ops(vec![Op::Text {
                i: 2,
                x: "x".into(),
            }]),
        );
        refused(
            &mut start(),
            ops(vec![Op::Attr {
                i: 2,
                k: "title".into(),
                v: Some("x".into()),
            }]),
        );
        refused(&mut start(), ops(vec![value(3, "hunter2")]));
        let mut c = start();
        assert!(c.check(ops(vec![value(3, "")]), &site()).is_ok());
        assert!(c.check(ops(vec![value(4, "hello")]), &site()).is_ok());
        // A field that becomes a password field keeps its value to itself…
        let to = |t: &str| Op::Attr {
            i: 4,
            k: "TYPE".into(),
            v: Some(t.into()),
        };
        refused(&mut start(), ops(vec![to("password"), value(4, "hunter2")]));
        // …until it is shown as text again ("show password").
        let mut c = start();
        assert!(c
            .check(ops(vec![to("hidden"), to("text"), value(4, "x")]), &site())
            .is_ok());
        // A secret field added later, or sent with its value.
        refused(
            &mut start(),
            ops(vec![
                Op::Kids {
                    i: 1,
                    c: vec![9],
                    n: vec![el(9, 1, "input", &[("type", "file")])],
                },
                value(9, "C:\\secret.pdf"),
            ]),
        );
        let leaky = vec![
            el(1, 0, "html", &[]),
            Node {
                v: Some("hunter2".into()),
                ..el(2, 1, "input", &[("type", "password")])
            },
        ];
        refused(
            &mut PageChecker::new(),
            page("https://shop.example/", leaky),
        );
        // A new page starts afresh.
        let mut c = start();
        c.check(page("https://shop.example/", body()), &site())
            .unwrap();
        assert!(c.check(ops(vec![value(3, "x")]), &site()).is_ok());
    }

    #[test]
    fn a_second_hello_is_refused() {
        let e = refused(
            &mut shared_checker(),
            Up::Hello {
                token: "secret-token".into(),
            },
        );
        assert!(!e.contains("secret-token"));
    }
}
