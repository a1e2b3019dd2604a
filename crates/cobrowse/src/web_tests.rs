//! Behaviour in headless Chromium (wasm-bindgen-test): what a snapshot and
//! the ops after it carry and never carry (canaries typed into redacted
//! fields, scripts, handlers, the widget), private-by-default mode, a
//! password field shown as text, a model mirror rebuilt from the ops, and
//! the session's frames (hello, page or hidden, ops, stop) without a broker.
//!
//! Each test builds its nodes in a fresh container and removes it; the
//! snapshots are of the whole test page, as in production.

use crate::changes::Tracker;
use crate::options::{socket_url, Options};
use crate::policy::Policy;
use crate::serialize::Serializer;
use crate::session::Session;
use crate::watch::observer_init;
use agent_assist_protocol::mirror::{Node as Wire, Op, Page, Redacted, Up};
use agent_assist_web::js_de::from_js;
use agent_assist_web::json;
use js_sys::{Array, Function, Reflect};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use web_sys::{Document, Element, Event, EventInit, HtmlInputElement, MutationObserver};

wasm_bindgen_test_configure!(run_in_browser);

fn doc() -> Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A container in the body holding `html`, removed when dropped.
struct Fixture(Element);

impl Fixture {
    fn new(html: &str) -> Fixture {
        let div = doc().create_element("div").unwrap();
        div.set_inner_html(html);
        doc().body().unwrap().append_child(&div).unwrap();
        Fixture(div)
    }

    fn q(&self, selector: &str) -> Element {
        self.0
            .query_selector(selector)
            .unwrap()
            .unwrap_or_else(|| panic!("no `{selector}`"))
    }

    fn input(&self, selector: &str) -> HtmlInputElement {
        self.q(selector).dyn_into().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.0.remove();
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn policy(redact: &[&str], unredact: &[&str], private: bool) -> Rc<Policy> {
    Rc::new(Policy::new(strings(redact), strings(unredact), private))
}

/// A tracker with its own observer, as the session's watch would have.
struct Harness {
    tracker: Tracker,
    observer: MutationObserver,
    delivered: Rc<RefCell<Vec<Array>>>,
    _callback: Closure<dyn FnMut(Array)>,
}

impl Harness {
    fn new(policy: Rc<Policy>) -> Harness {
        let delivered = Rc::new(RefCell::new(Vec::new()));
        let sink = delivered.clone();
        let callback = Closure::<dyn FnMut(Array)>::new(move |records: Array| {
            sink.borrow_mut().push(records);
        });
        let observer = MutationObserver::new(callback.as_ref().unchecked_ref()).unwrap();
        observer
            .observe_with_options(&doc(), &observer_init())
            .unwrap();
        Harness {
            tracker: Tracker::new(Serializer::new(doc(), policy)),
            observer,
            delivered,
            _callback: callback,
        }
    }

    fn snapshot(&mut self) -> Page {
        self.observer.take_records();
        self.delivered.borrow_mut().clear();
        self.tracker.snapshot(None)
    }

    /// What a flush would send now.
    fn flush(&mut self) -> Vec<Op> {
        let all = Array::new();
        for batch in self.delivered.borrow_mut().drain(..) {
            for r in batch.iter() {
                all.push(&r);
            }
        }
        for r in self.observer.take_records().iter() {
            all.push(&r);
        }
        self.tracker.ops(&all)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

fn page_json(page: &Page) -> String {
    json::to_string(&Up::Page(page.clone())).unwrap()
}

fn ops_json(ops: &[Op]) -> String {
    json::to_string(&Up::Ops { ops: ops.to_vec() }).unwrap()
}

/// Fails if `canary` is in `json` in any letter case, percent-encoded,
/// or in base64.
fn assert_absent(json: &str, canary: &str, what: &str) {
    let lower = json.to_lowercase();
    assert!(
        !lower.contains(&canary.to_lowercase()),
        "a canary leaked ({what})"
    );
    let percent: String = canary.bytes().map(|b| format!("%{b:02X}")).collect();
    assert!(
        !json.to_uppercase().contains(&percent),
        "a canary leaked percent-encoded ({what})"
    );
    let b64 = js_sys::global()
        .unchecked_into::<web_sys::Window>()
        .btoa(canary)
        .unwrap();
    assert!(
        !json.contains(b64.trim_end_matches('=')),
        "a canary leaked in base64 ({what})"
    );
}

fn type_into(input: &HtmlInputElement, text: &str) {
    input.set_value(text);
    let init = EventInit::new();
    init.set_bubbles(true);
    input
        .dispatch_event(&Event::new_with_event_init_dict("input", &init).unwrap())
        .unwrap();
}

/// The node written for `el` (found by an attribute the test gave it).
fn node_with<'a>(nodes: &'a [Wire], attr: &str, value: &str) -> Option<&'a Wire> {
    nodes
        .iter()
        .find(|n| n.a.iter().any(|(k, v)| k == attr && v == value))
}

fn assert_only_boxes(nodes: &[Wire]) {
    let boxes: BTreeSet<u32> = nodes
        .iter()
        .filter(|n| n.r.is_some())
        .map(|n| n.i)
        .collect();
    for n in nodes {
        if n.r.is_some() {
            assert!(n.a.is_empty() && n.v.is_none() && n.c.is_none() && n.x.is_none());
            assert!(n.e.is_some());
        }
        assert!(
            !boxes.contains(&n.p),
            "node {} is inside a redacted box",
            n.i
        );
    }
}

const SECRETS: &str = r##"
  <form>
    <input id="pw" type="password">
    <input id="otp" autocomplete="one-time-code">
    <input id="card" autocomplete="billing cc-number">
    <div id="marked" data-agent-assist-redact><input id="inside"><span>Zq7-Marked-Text</span></div>
    <fieldset class="payment"><input id="by-selector" class="iban"></fieldset>
    <input id="hidden" type="hidden">
    <input id="shown" name="shown">
    <textarea id="notes">default text</textarea>
    <input id="box" type="checkbox" checked>
    <select id="country"><option value="us">United States</option><option value="fr" selected>France</option></select>
  </form>
  <script type="text/x-template">Zq7-Script</script>
  <noscript>Zq7-Noscript</noscript>
  <template><p>Zq7-Template</p></template>
  <!-- Zq7-Comment -->
  <button onclick="void 0" data-k="btn">Go</button>
  <a data-k="js" href="javascript:alert(1)">js</a>
  <a data-k="rel" href="/help?q=1">help</a>
  <a data-k="frag" href="#top">top</a>
  <img data-k="img" src="pic.png" srcset="pic-2x.png 2x">
  <iframe data-k="frame" srcdoc="<p>Zq7-Srcdoc</p>"></iframe>
  <link rel="preload" href="/Zq7-preload.js">
  <agent-assist-widget><span>Zq7-Widget</span></agent-assist-widget>
  <div id="movable"><p>movable</p></div>
"##;

#[wasm_bindgen_test]
fn a_snapshot_carries_no_secret_and_redacted_fields_only_as_boxes() {
    let f = Fixture::new(SECRETS);
    for (id, value) in [
        ("#pw", "Zq7-Password"),
        ("#otp", "Zq7-Otp"),
        ("#card", "Zq7-Card"),
        ("#inside", "Zq7-Marked-Value"),
        ("#by-selector", "Zq7-Selector"),
        ("#hidden", "Zq7-Hidden"),
        ("#shown", "visible value"),
    ] {
        f.input(id).set_value(value);
    }
    let mut h = Harness::new(policy(&[".payment .iban"], &[], false));
    let page = h.snapshot();
    let json = page_json(&page);
    for canary in [
        "Zq7-Password",
        "Zq7-Otp",
        "Zq7-Card",
        "Zq7-Marked-Value",
        "Zq7-Marked-Text",
        "Zq7-Selector",
        "Zq7-Hidden",
        "Zq7-Script",
        "Zq7-Noscript",
        "Zq7-Template",
        "Zq7-Comment",
        "Zq7-Srcdoc",
        "Zq7-preload",
        "Zq7-Widget",
    ] {
        assert_absent(&json, canary, canary);
    }
    for never in [
        "onclick",
        "javascript:",
        "srcset",
        "agent-assist-widget",
        "\"script\"",
        "\"noscript\"",
        "\"template\"",
    ] {
        assert!(!json.contains(never), "{never} was sent");
    }
    assert_only_boxes(&page.nodes);

    // Redacted fields are boxes; the rest keeps its value and state.
    let by_id = |id: &str| node_with(&page.nodes, "id", id);
    for id in ["pw", "otp", "card", "by-selector"] {
        assert!(by_id(id).is_none(), "{id} kept its attributes");
    }
    let marked = page
        .nodes
        .iter()
        .filter(|n| n.r.is_some() && n.e.as_deref() == Some("input"))
        .count();
    assert!(
        marked >= 4,
        "password, code, card and selector fields are boxes"
    );
    assert_eq!(by_id("shown").unwrap().v.as_deref(), Some("visible value"));
    assert_eq!(by_id("notes").unwrap().v.as_deref(), Some("default text"));
    assert_eq!(by_id("box").unwrap().c, Some(true));
    assert_eq!(by_id("country").unwrap().v.as_deref(), Some("France"));
    assert_eq!(by_id("hidden").unwrap().v, None);
    assert!(page
        .nodes
        .iter()
        .any(|n| n.e.as_deref() == Some("iframe") && n.r.is_some()));

    // URLs are absolute, bare fragments stay, forbidden URLs are dropped.
    let origin = web_sys::window().unwrap().location().origin().unwrap();
    let href = |k: &str| {
        node_with(&page.nodes, "data-k", k)
            .and_then(|n| n.a.iter().find(|(a, _)| a == "href"))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(href("rel"), Some(format!("{origin}/help?q=1")));
    assert_eq!(href("frag").as_deref(), Some("#top"));
    assert_eq!(href("js"), None);
    // The page's address has no query or fragment.
    assert!(!page.url.contains('?') && !page.url.contains('#'));
    drop(f);
}

#[wasm_bindgen_test]
fn typing_into_redacted_fields_never_travels_but_other_fields_do() {
    let f = Fixture::new(SECRETS);
    let mut h = Harness::new(policy(&[".payment .iban"], &[], false));
    h.snapshot();
    for (id, canary) in [
        ("#pw", "Zq7-Typed-Password"),
        ("#otp", "Zq7-Typed-Otp"),
        ("#card", "Zq7-Typed-Card"),
        ("#inside", "Zq7-Typed-Marked"),
        ("#by-selector", "Zq7-Typed-Selector"),
        ("#shown", "typed visibly"),
    ] {
        let input = f.input(id);
        input.set_value(canary);
        h.tracker.note_value(input.unchecked_into());
    }
    // Text changed inside a redacted element, and a field added inside one.
    f.q("#marked span").set_text_content(Some("Zq7-Typed-Text"));
    // A visible subtree moved into a redacted element, then changed.
    f.q("#marked").append_child(&f.q("#movable")).unwrap();
    f.q("#movable p")
        .first_child()
        .unwrap()
        .set_node_value(Some("Zq7-Moved-Text"));
    let late = doc().create_element("input").unwrap();
    f.q("#marked").append_child(&late).unwrap();
    late.unchecked_ref::<HtmlInputElement>()
        .set_value("Zq7-Late");
    h.tracker.note_value(late);
    let ops = h.flush();
    let json = ops_json(&ops);
    for canary in [
        "Zq7-Typed-Password",
        "Zq7-Typed-Otp",
        "Zq7-Typed-Card",
        "Zq7-Typed-Marked",
        "Zq7-Typed-Selector",
        "Zq7-Typed-Text",
        "Zq7-Late",
        "Zq7-Moved-Text",
    ] {
        assert_absent(&json, canary, canary);
    }
    assert!(
        ops.iter()
            .any(|op| matches!(op, Op::Value { v: Some(v), .. } if v == "typed visibly")),
        "a visible field's value travels: {json}"
    );
    drop(f);
}

#[wasm_bindgen_test]
fn an_element_that_becomes_redacted_is_replaced_by_its_box() {
    let f = Fixture::new(r#"<div id="card"><input id="num"><p>Number</p></div>"#);
    let mut h = Harness::new(policy(&[".secret"], &[], false));
    h.snapshot();
    let card = f.q("#card");
    card.set_attribute("class", "secret").unwrap();
    f.q("#card p").set_text_content(Some("Zq7-After-Class"));
    f.input("#num").set_value("Zq7-After-Class-Value");
    h.tracker.note_value(f.q("#num"));
    let ops = h.flush();
    let json = ops_json(&ops);
    assert_absent(&json, "Zq7-After-Class", "after a redact class was added");
    let boxed = ops.iter().any(|op| match op {
        Op::Kids { n, .. } => n
            .iter()
            .any(|n| n.r.is_some() && n.e.as_deref() == Some("div")),
        _ => false,
    });
    assert!(boxed, "the element is sent again as a box: {json}");
    // Removing the class shows it again, in full.
    card.remove_attribute("class").unwrap();
    let json = ops_json(&h.flush());
    assert!(json.contains("Zq7-After-Class"), "unredacted again: {json}");
    drop(f);
}

#[wasm_bindgen_test]
fn a_password_field_shown_as_text_stays_redacted() {
    let f = Fixture::new(r#"<input id="pw" type="password"><span id="slot"></span>"#);
    let mut h = Harness::new(policy(&[], &[], false));
    h.snapshot();
    let pw = f.input("#pw");
    // The visitor clicks "show password", then types.
    pw.set_type("text");
    type_into(&pw, "Zq7-Shown");
    h.tracker.note_value(pw.clone().unchecked_into());
    let json = ops_json(&h.flush());
    assert_absent(&json, "Zq7-Shown", "toggled field");
    // A fresh snapshot still has it as a box.
    let page = h.snapshot();
    assert_absent(
        &page_json(&page),
        "Zq7-Shown",
        "toggled field in a snapshot",
    );

    // A field added as a password and toggled before the next flush.
    let other = doc().create_element("input").unwrap();
    other.set_attribute("type", "password").unwrap();
    f.q("#slot").append_child(&other).unwrap();
    other.set_attribute("type", "text").unwrap();
    other
        .unchecked_ref::<HtmlInputElement>()
        .set_value("Zq7-New-Toggle");
    let json = ops_json(&h.flush());
    assert_absent(&json, "Zq7-New-Toggle", "field toggled in its first batch");
    drop(f);
}

#[wasm_bindgen_test]
fn private_by_default_shows_only_unredacted_areas() {
    let f = Fixture::new(
        r#"<p>Zq7-Private-Text</p>
        <img src="face.png">
        <div id="wrap"> <span> </span> </div>
        <section data-agent-assist-unredact>
          <h2>Shown heading</h2>
          <input id="search" value="shown query">
          <span data-agent-assist-redact>Zq7-Explicit-Wins</span>
        </section>
        <div class="faq"><p>Shown answer</p></div>"#,
    );
    let mut h = Harness::new(policy(&[], &[".faq"], true));
    let page = h.snapshot();
    let json = page_json(&page);
    assert_absent(&json, "Zq7-Private-Text", "text outside unredacted areas");
    assert_absent(&json, "Zq7-Explicit-Wins", "redact inside unredact");
    assert!(json.contains("Shown heading") && json.contains("Shown answer"));
    assert!(json.contains("shown query"));
    assert!(page
        .nodes
        .iter()
        .any(|n| n.e.as_deref() == Some("img") && n.r.is_some()));
    assert_only_boxes(&page.nodes);

    // Text appearing later outside the unredacted areas stays hidden, as
    // text typed into a private element.
    f.q("#wrap span")
        .first_child()
        .unwrap()
        .set_node_value(Some("Zq7-Later-Text"));
    let json = ops_json(&h.flush());
    assert_absent(&json, "Zq7-Later-Text", "text set later");
    let text = doc().create_text_node("Zq7-Direct-Text");
    f.q("#wrap").append_child(&text).unwrap();
    let json = ops_json(&h.flush());
    assert_absent(&json, "Zq7-Direct-Text", "text added later");
    // Inside an unredacted area, changes travel.
    f.q(".faq p").set_text_content(Some("Changed answer"));
    assert!(ops_json(&h.flush()).contains("Changed answer"));
    drop(f);
}

#[wasm_bindgen_test]
fn attribute_changes_are_filtered_like_the_snapshot() {
    let f = Fixture::new(r#"<a id="link" href="/a">a</a>"#);
    let mut h = Harness::new(policy(&[], &[], false));
    let page = h.snapshot();
    let id = node_with(&page.nodes, "id", "link").unwrap().i;
    let link = f.q("#link");
    link.set_attribute("onclick", "steal()").unwrap();
    link.set_attribute("href", "/b").unwrap();
    link.set_attribute("class", "big").unwrap();
    let ops = h.flush();
    let origin = web_sys::window().unwrap().location().origin().unwrap();
    assert!(ops.contains(&Op::Attr {
        i: id,
        k: "href".into(),
        v: Some(format!("{origin}/b"))
    }));
    assert!(ops.contains(&Op::Attr {
        i: id,
        k: "class".into(),
        v: Some("big".into())
    }));
    assert!(!ops_json(&ops).contains("onclick"));
    // A URL that may not travel removes the old one.
    link.set_attribute("href", "javascript:steal()").unwrap();
    let ops = h.flush();
    assert_eq!(
        ops,
        vec![Op::Attr {
            i: id,
            k: "href".into(),
            v: None
        }]
    );
    drop(f);
}

/// A mirror as the console keeps it: nodes by id, each with its children.
#[derive(Default)]
struct Model {
    nodes: BTreeMap<u32, MNode>,
    used: BTreeSet<u32>,
}

#[derive(Default, Clone)]
struct MNode {
    e: Option<String>,
    x: Option<String>,
    a: BTreeMap<String, String>,
    v: Option<String>,
    c: Option<bool>,
    r: Option<Redacted>,
    parent: u32,
    kids: Vec<u32>,
}

impl Model {
    fn from_page(page: &Page) -> Model {
        let mut m = Model::default();
        m.nodes.insert(0, MNode::default());
        m.insert(&page.nodes);
        m
    }

    fn insert(&mut self, list: &[Wire]) {
        for n in list {
            assert!(
                self.used.insert(n.i),
                "id {} used twice in one snapshot",
                n.i
            );
            let parent = self.nodes.get_mut(&n.p).expect("parents come first");
            assert!(parent.r.is_none(), "a child of a redacted box");
            parent.kids.push(n.i);
            self.nodes.insert(
                n.i,
                MNode {
                    e: n.e.clone(),
                    x: n.x.clone(),
                    a: n.a.iter().cloned().collect(),
                    v: n.v.clone(),
                    c: n.c,
                    r: n.r,
                    parent: n.p,
                    kids: Vec::new(),
                },
            );
        }
    }

    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Kids { i, c, n } => {
                    assert!(self.nodes.contains_key(i), "kids of unknown {i}");
                    self.insert(n);
                    for id in c {
                        let old = self.nodes.get(id).expect("children exist").parent;
                        if old != *i {
                            self.nodes.get_mut(&old).unwrap().kids.retain(|k| k != id);
                            self.nodes.get_mut(id).unwrap().parent = *i;
                        }
                    }
                    self.nodes.get_mut(i).unwrap().kids = c.clone();
                }
                Op::Attr { i, k, v } => {
                    let node = self.nodes.get_mut(i).expect("attr of a known node");
                    assert!(node.e.is_some() && node.r.is_none());
                    match v {
                        Some(v) => node.a.insert(k.clone(), v.clone()),
                        None => node.a.remove(k),
                    };
                }
                Op::Text { i, x } => {
                    let node = self.nodes.get_mut(i).expect("text of a known node");
                    assert!(node.x.is_some());
                    node.x = Some(x.clone());
                }
                Op::Value { i, v, c } => {
                    let node = self.nodes.get_mut(i).expect("value of a known node");
                    node.v = v.clone().or(node.v.take());
                    node.c = c.or(node.c);
                }
                _ => {}
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        let mut stack = vec![(0u32, false)];
        while let Some((id, closing)) = stack.pop() {
            let n = &self.nodes[&id];
            if closing {
                out.push_str("</>");
                continue;
            }
            if let Some(x) = &n.x {
                out.push_str(&format!("{x:?}"));
                continue;
            }
            out.push_str(&format!(
                "<{} {:?} v={:?} c={:?} box={}>",
                n.e.as_deref().unwrap_or("#document"),
                n.a,
                n.v,
                n.c,
                n.r.is_some()
            ));
            stack.push((id, true));
            for k in n.kids.iter().rev() {
                stack.push((*k, false));
            }
        }
        out
    }
}

#[wasm_bindgen_test]
fn ops_rebuild_the_page_in_a_model_mirror() {
    let f = Fixture::new(
        r#"<ul id="list"><li id="a">A</li><li id="b">B</li><li id="c">C</li></ul>
        <div id="other"><p id="para">Hello <b>there</b></p></div>"#,
    );
    let policy = policy(&[".hide"], &[], false);
    let mut h = Harness::new(policy.clone());
    let mut model = Model::from_page(&h.snapshot());
    let check = |model: &Model, round: &str| {
        let fresh = Serializer::new(doc(), policy.clone()).snapshot(None);
        assert_eq!(model.render(), Model::from_page(&fresh).render(), "{round}");
    };
    check(&model, "snapshot");

    // Insert in the middle, remove, move to another parent.
    let list = f.q("#list");
    let d = doc().create_element("li").unwrap();
    d.set_text_content(Some("D"));
    list.insert_before(&d, Some(&f.q("#b"))).unwrap();
    f.q("#a").remove();
    f.q("#other").append_child(&f.q("#c")).unwrap();
    model.apply(&h.flush());
    check(&model, "insert, remove, move");

    // Reorder within a parent, text and attribute changes, nested insert.
    list.append_child(&f.q("#b")).unwrap();
    f.q("#para b")
        .first_child()
        .unwrap()
        .set_node_value(Some("you"));
    f.q("#para").set_attribute("class", "lead").unwrap();
    f.q("#c").set_inner_html("<em>C1</em><em>C2</em>");
    model.apply(&h.flush());
    check(&model, "reorder, text, attribute, nested");

    // Something that becomes hidden, then moved out of a hidden place.
    f.q("#other").set_attribute("class", "hide").unwrap();
    model.apply(&h.flush());
    check(&model, "redacted");
    list.append_child(&f.q("#para")).unwrap();
    f.q("#other").remove_attribute("class").unwrap();
    model.apply(&h.flush());
    check(&model, "moved out, shown again");

    // Insert and remove in the same batch leaves nothing behind.
    let gone = doc().create_element("li").unwrap();
    list.append_child(&gone).unwrap();
    gone.remove();
    list.set_attribute("data-n", "1").unwrap();
    model.apply(&h.flush());
    check(&model, "transient node");
    drop(f);
}

#[wasm_bindgen_test]
fn nothing_is_sent_when_nothing_changed() {
    let mut h = Harness::new(policy(&[], &[], false));
    h.snapshot();
    assert!(h.flush().is_empty());
}

/// A session that sends into a list, with `onState` recorded.
struct TestSession {
    session: Rc<Session>,
    sent: Rc<RefCell<Vec<String>>>,
    states: Rc<RefCell<Vec<String>>>,
    _on_state: Closure<dyn FnMut(JsValue)>,
}

impl TestSession {
    fn new(redact: &[&str]) -> TestSession {
        let states = Rc::new(RefCell::new(Vec::new()));
        let sink = states.clone();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
            sink.borrow_mut().push(s.as_string().unwrap_or_default());
        });
        let options = Options {
            socket_url: "ws://127.0.0.1:9/v1/sessions/s/mirror".into(),
            token: "tok_test".into(),
            redact: strings(redact),
            unredact: Vec::new(),
            private_by_default: false,
            on_state: Some(on_state.as_ref().unchecked_ref::<Function>().clone()),
        };
        let window = web_sys::window().unwrap();
        let session = Session::new(options, window, doc());
        let sent = Rc::new(RefCell::new(Vec::new()));
        session.attach_test_link(sent.clone());
        TestSession {
            session,
            sent,
            states,
            _on_state: on_state,
        }
    }

    fn welcome(&self, pages: &[&str]) {
        let pages: Vec<String> = pages.iter().map(|p| format!("{p:?}")).collect();
        self.session.on_text(&format!(
            r#"{{"t":"welcome","pages":[{}]}}"#,
            pages.join(",")
        ));
    }

    fn frames(&self) -> Vec<Up> {
        self.sent
            .borrow_mut()
            .drain(..)
            .map(|t| from_js(js_sys::JSON::parse(&t).unwrap()).unwrap())
            .collect()
    }

    fn states(&self) -> Vec<String> {
        self.states.borrow_mut().drain(..).collect()
    }
}

impl Drop for TestSession {
    fn drop(&mut self) {
        self.session.stop();
    }
}

fn outline_sheets() -> u32 {
    doc().adopted_style_sheets().length()
}

/// Resolves at the next animation frame.
async fn next_frame() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = web_sys::window().unwrap().request_animation_frame(&resolve);
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_shared_page_is_sent_then_its_changes_once_per_frame_until_stop() {
    let sheets_before = outline_sheets();
    let s = TestSession::new(&[".secret"]);
    assert_eq!(
        s.frames(),
        vec![Up::Hello {
            token: "tok_test".into()
        }]
    );
    s.welcome(&["/*"]);
    let frames = s.frames();
    assert!(
        matches!(frames.as_slice(), [Up::Page(_)]),
        "a snapshot follows the welcome"
    );
    assert_eq!(s.states(), ["sharing"]);
    assert_eq!(
        outline_sheets(),
        sheets_before + 1,
        "the outline sheet is added"
    );

    // Changes go out in one frame at the next animation frame.
    let f = Fixture::new(r#"<p id="x">one</p><input id="field">"#);
    f.q("#x").set_text_content(Some("two"));
    type_into(&f.input("#field"), "hello");
    next_frame().await;
    next_frame().await;
    let frames = s.frames();
    assert_eq!(frames.len(), 1, "one frame per flush");
    let Up::Ops { ops } = &frames[0] else {
        panic!("ops expected")
    };
    assert!(ops.iter().any(|op| matches!(op, Op::Kids { .. })));
    // The field was added in this batch: its value is in the new node.
    assert!(ops_json(ops).contains("two"));
    type_into(&f.input("#field"), "hello again");
    s.session.flush_now();
    let frames = s.frames();
    assert!(
        matches!(frames.as_slice(), [Up::Ops { ops }] if matches!(ops.as_slice(), [Op::Value { v: Some(v), .. }] if v == "hello again"))
    );

    // Resync: a fresh snapshot.
    s.session.on_text(r#"{"t":"resync"}"#);
    assert!(matches!(s.frames().as_slice(), [Up::Page(_)]));

    // After stop nothing is sent, and the outline is gone.
    s.session.stop();
    s.session.stop();
    f.q("#x").set_text_content(Some("three"));
    next_frame().await;
    next_frame().await;
    s.session.flush_now();
    assert!(s.frames().is_empty(), "nothing after stop");
    assert_eq!(
        outline_sheets(),
        sheets_before,
        "the outline sheet is removed"
    );
    drop(f);
}

#[wasm_bindgen_test]
fn a_page_outside_the_shared_pages_is_hidden() {
    let sheets_before = outline_sheets();
    let s = TestSession::new(&[]);
    s.frames();
    s.welcome(&["/help/*", "!/"]);
    assert_eq!(s.frames(), vec![Up::Hidden]);
    assert_eq!(s.states(), ["not_shared"]);
    assert_eq!(
        outline_sheets(),
        sheets_before,
        "no outline on a hidden page"
    );
    // Changes on a hidden page send nothing.
    let f = Fixture::new("<p>not shared</p>");
    s.session.flush_now();
    assert!(s.frames().is_empty());
    drop(f);
}

#[wasm_bindgen_test]
fn options_are_checked_and_invalid_selectors_named() {
    let obj = |pairs: &[(&str, JsValue)]| {
        let o = js_sys::Object::new();
        for (k, v) in pairs {
            Reflect::set(&o, &(*k).into(), v).unwrap();
        }
        JsValue::from(o)
    };
    let message = |v: JsValue| match crate::start(v) {
        Ok(m) => {
            m.stop();
            panic!("accepted")
        }
        Err(e) => agent_assist_web::js_message(&e),
    };
    let base = || {
        vec![
            ("broker", JsValue::from("https://broker.example")),
            ("sessionId", JsValue::from("ses_1")),
            ("token", JsValue::from("tok")),
        ]
    };
    assert!(message(JsValue::UNDEFINED).contains("options"));
    let mut no_token = base();
    no_token.pop();
    assert!(message(obj(&no_token)).contains("options.token"));
    let mut bad_broker = base();
    bad_broker[0].1 = "ftp://x".into();
    assert!(message(obj(&bad_broker)).contains("options.broker"));
    for bad in ["div[", "a{}", "[a=\"b", "p \\"] {
        let mut with = base();
        with.push(("redact", Array::of1(&bad.into()).into()));
        let msg = message(obj(&with));
        assert!(msg.contains("options.redact") && msg.contains(bad), "{msg}");
    }
    let mut with = base();
    with.push(("unredact", Array::of1(&"::nope".into()).into()));
    assert!(message(obj(&with)).contains("::nope"));

    assert_eq!(
        socket_url("https://b.example/base/", "a/b c").as_deref(),
        Some("wss://b.example/base/v1/sessions/a%2Fb%20c/mirror")
    );
    assert_eq!(
        socket_url("http://127.0.0.1:8080", "ses_1").as_deref(),
        Some("ws://127.0.0.1:8080/v1/sessions/ses_1/mirror")
    );
    assert_eq!(socket_url("javascript:alert(1)", "s"), None);
}

#[wasm_bindgen_test]
fn the_broker_closing_for_good_stops_and_removes_the_outline() {
    let sheets_before = outline_sheets();
    let s = TestSession::new(&[]);
    s.welcome(&["/*"]);
    assert_eq!(outline_sheets(), sheets_before + 1);
    s.session
        .on_close(agent_assist_protocol::mirror::CLOSE_NOT_ACTIVE);
    assert_eq!(s.states(), ["sharing", "stopped"]);
    assert_eq!(outline_sheets(), sheets_before);
    s.frames();
    // Nothing more is sent, even for a frame that would otherwise restart it.
    s.session.on_text(r#"{"t":"welcome","pages":["/*"]}"#);
    s.session.flush_now();
    assert!(s.frames().is_empty());
    assert_eq!(outline_sheets(), sheets_before);
}
