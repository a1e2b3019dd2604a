//! DOM behaviour in headless Chromium (wasm-bindgen-test): the modal's
//! structure and ARIA, the code's display and copy text, the countdown,
//! the expired and error states, and that nothing happens before a click.
//!
//! Only a broker that is not there (`127.0.0.1:9`, discard port) is used
//! here; the real broker is exercised by the Playwright suite.

use crate::i18n::Strings;
use crate::ui::code_modal::{now, Action, CodeModal};
use crate::ui::Host;
use crate::AgentAssist;
use gloo_timers::future::TimeoutFuture;
use js_sys::{Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;
use web_sys::{Document, Element, ShadowRoot};

wasm_bindgen_test_configure!(run_in_browser);

const NOWHERE: &str = "http://127.0.0.1:9";

fn doc() -> Document {
    web_sys::window().unwrap().document().unwrap()
}

fn config(pairs: &[(&str, &str)]) -> JsValue {
    let obj = Object::new();
    for (k, v) in pairs {
        Reflect::set(&obj, &(*k).into(), &(*v).into()).unwrap();
    }
    obj.into()
}

/// A fresh container in the body, so tests do not see each other's nodes.
fn container() -> Element {
    let div = doc().create_element("div").unwrap();
    doc().body().unwrap().append_child(&div).unwrap();
    div
}

/// A widget host as the widget module makes it, in `lang`.
fn test_host(lang: &str) -> Host {
    Host::new(
        &doc(),
        crate::config::Theme::Auto,
        lang,
        crate::ui::LINK_CSS,
    )
    .unwrap()
}

fn shadow(parent: &Element) -> ShadowRoot {
    parent
        .query_selector("agent-assist-widget")
        .unwrap()
        .expect("widget host")
        .shadow_root()
        .expect("open shadow root")
}

fn q(root: &ShadowRoot, selector: &str) -> Element {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no `{selector}` in the widget"))
}

fn text(e: &Element) -> String {
    e.text_content().unwrap_or_default()
}

/// Waits for a condition, checking every 20 ms for up to 10 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        TimeoutFuture::new(20).await;
    }
    panic!("timed out waiting for {what}");
}

fn broker_requests() -> u32 {
    let perf = web_sys::window().unwrap().performance().unwrap();
    perf.get_entries_by_type("resource")
        .iter()
        .filter(|e| {
            e.dyn_ref::<web_sys::PerformanceEntry>()
                .is_some_and(|e| e.name().starts_with(NOWHERE))
        })
        .count() as u32
}

fn storage_len() -> u32 {
    let w = web_sys::window().unwrap();
    w.local_storage().unwrap().unwrap().length().unwrap()
        + w.session_storage().unwrap().unwrap().length().unwrap()
}

#[wasm_bindgen_test]
fn mounting_adds_only_the_link_and_touches_no_network_or_storage() {
    let before = (broker_requests(), storage_len());
    let parent = container();
    let aa =
        AgentAssist::init(config(&[("siteKey", "t"), ("broker", NOWHERE)]), None, None).unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();

    let root = shadow(&parent);
    let link = q(&root, "button.link");
    assert_eq!(text(&link), "Agent Assist");
    assert_eq!(link.get_attribute("type").as_deref(), Some("button"));
    assert_eq!(
        link.get_attribute("aria-haspopup").as_deref(),
        Some("dialog")
    );
    // The modal is built on first use, not on page load.
    assert!(root.query_selector("dialog").unwrap().is_none());
    assert_eq!((broker_requests(), storage_len()), before);
    aa.destroy();
}

#[wasm_bindgen_test]
async fn the_modal_has_its_structure_and_aria_and_an_unreachable_broker_offers_try_again() {
    let parent = container();
    let aa = AgentAssist::init(
        config(&[
            ("siteKey", "t"),
            ("broker", NOWHERE),
            ("privacyUrl", "/privacy"),
        ]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();

    let root = shadow(&parent);
    // While the request is in flight: a placeholder of the code's size,
    // drawn at once (the dialog opens with it after a 50 ms grace, or
    // with the answer if that comes first).
    assert!(root.query_selector(".skeleton").unwrap().is_some());
    assert_eq!(
        q(&root, ".panel").get_attribute("aria-busy").as_deref(),
        Some("true")
    );
    let status = q(&root, "[role=status]");
    assert_eq!(text(&status), "Getting your code…");
    let dialog: web_sys::HtmlDialogElement = q(&root, "dialog").unchecked_into();
    until("open() shows the dialog", || dialog.open()).await;
    let title_id = dialog.get_attribute("aria-labelledby").unwrap();
    let title = root.get_element_by_id(&title_id).unwrap();
    assert_eq!(title.tag_name(), "H2");
    assert_eq!(text(&title), "Share your screen with support");
    assert_eq!(
        root.query_selector_all("ul.notices li").unwrap().length(),
        5
    );
    let privacy = q(&root, ".privacy a");
    assert!(privacy.get_attribute("href").unwrap().ends_with("/privacy"));
    assert_eq!(
        privacy.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(
        q(&root, "button.close")
            .get_attribute("aria-label")
            .as_deref(),
        Some("Close")
    );
    assert_eq!(text(&q(&root, "button.cancel")), "Cancel");
    // Focus on Close while the code is on its way: widget.spec.js (with a
    // stalled broker; this one's refusal may come before the first frame).

    until("the error state", || {
        root.query_selector("button.retry").unwrap().is_some()
    })
    .await;
    let message = q(&root, ".message.error");
    assert!(text(&message).starts_with("We couldn't reach our support service."));
    until("the error is announced", || text(&status) == text(&message)).await;
    assert_eq!(text(&q(&root, "button.retry")), "Try again");
    assert_eq!(
        root.active_element().as_ref(),
        Some(&q(&root, "button.retry"))
    );
    assert!(root.query_selector(".skeleton").unwrap().is_none());

    aa.close().unwrap();
    assert!(!dialog.open());
    assert_eq!(
        root.active_element().as_ref(),
        Some(&q(&root, "button.link")),
        "focus returns to the link"
    );
    aa.destroy();
}

/// A modal on its own, for states that need a code.
fn modal(
    strings: &Strings,
) -> (
    Element,
    ShadowRoot,
    CodeModal,
    Rc<RefCell<Vec<Action>>>,
    Host,
) {
    let parent = container();
    let host = test_host("en");
    host.mount(&parent).unwrap();
    let actions = Rc::new(RefCell::new(Vec::new()));
    let seen = actions.clone();
    let m = CodeModal::new(
        &doc(),
        &host.root,
        strings,
        None,
        Rc::new(move |a| seen.borrow_mut().push(a)),
    );
    let root = host.root.clone();
    (parent, root, m, actions, host)
}

#[wasm_bindgen_test]
fn the_code_is_grouped_read_digit_by_digit_and_copies_as_six_digits() {
    let (_parent, root, mut m, _actions, _host) = modal(&Strings::for_locale("en"));
    m.open();
    m.show_code("042917", now() + 1_200_000.0);

    let groups: Vec<String> = (0..2)
        .map(|i| {
            text(
                &root
                    .query_selector_all(".code span[aria-hidden=true]")
                    .unwrap()
                    .item(i)
                    .unwrap()
                    .unchecked_into(),
            )
        })
        .collect();
    assert_eq!(groups, ["042", "917"], "leading zeros kept, two groups");
    assert_eq!(text(&q(&root, ".code .sr")), "0 4 2 9 1 7");
    assert_eq!(
        text(&q(&root, "[role=status]")),
        "Your support code is 0 4 2 9 1 7."
    );
    assert_eq!(text(&q(&root, ".time")), "20:00");

    let init = web_sys::ClipboardEventInit::new();
    let data = web_sys::DataTransfer::new().unwrap();
    init.set_clipboard_data(Some(&data));
    init.set_bubbles(true);
    init.set_cancelable(true);
    let event = web_sys::ClipboardEvent::new_with_event_init_dict("copy", &init).unwrap();
    q(&root, ".code").dispatch_event(&event).unwrap();
    assert_eq!(data.get_data("text/plain").unwrap(), "042917");
    assert!(event.default_prevented());
}

#[wasm_bindgen_test]
async fn the_countdown_ticks_and_the_expired_state_offers_a_new_code() {
    let (_parent, root, mut m, actions, _host) = modal(&Strings::for_locale("en"));
    m.open();
    m.show_code("123456", now() + 61_000.0);
    assert_eq!(text(&q(&root, ".time")), "01:01");
    until("the countdown to tick", || {
        text(&q(&root, ".time")) == "01:00"
    })
    .await;

    m.show_expired();
    assert!(
        root.query_selector(".code").unwrap().is_none(),
        "the expired code is gone"
    );
    assert_eq!(text(&q(&root, ".message")), "This code has expired.");
    let button = q(&root, "button.retry");
    assert_eq!(text(&button), "Get a new code");
    assert_eq!(text(&q(&root, "[role=status]")), "This code has expired.");
    button.unchecked_ref::<web_sys::HtmlElement>().click();
    q(&root, "button.cancel")
        .unchecked_ref::<web_sys::HtmlElement>()
        .click();
    assert_eq!(*actions.borrow(), [Action::Retry, Action::Cancel]);
}

#[wasm_bindgen_test]
fn french_wording_and_overrides() {
    let parent = container();
    let overrides = Object::new();
    Reflect::set(&overrides, &"cancel".into(), &"Plus tard".into()).unwrap();
    let cfg = config(&[("siteKey", "t"), ("broker", NOWHERE), ("locale", "fr-CA")]);
    Reflect::set(&cfg, &"strings".into(), &overrides).unwrap();
    let aa = AgentAssist::init(cfg, None, None).unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();
    let root = shadow(&parent);
    assert_eq!(
        text(&q(&root, "h2")),
        "Partager votre écran avec le support"
    );
    assert_eq!(text(&q(&root, "button.cancel")), "Plus tard");
    assert_eq!(
        parent
            .query_selector("agent-assist-widget")
            .unwrap()
            .unwrap()
            .get_attribute("lang")
            .as_deref(),
        Some("fr")
    );
    aa.destroy();
}

#[wasm_bindgen_test]
fn destroy_removes_every_node() {
    let parent = container();
    let aa =
        AgentAssist::init(config(&[("siteKey", "t"), ("broker", NOWHERE)]), None, None).unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();
    aa.destroy();
    assert_eq!(parent.child_element_count(), 0);
    let err = aa.open().unwrap_err();
    assert_eq!(
        Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("destroyed")
    );
}

#[wasm_bindgen_test]
fn config_errors_name_the_field() {
    let with = |key: &str, value: JsValue| {
        let cfg = config(&[("siteKey", "t")]);
        Reflect::set(&cfg, &key.into(), &value).unwrap();
        cfg
    };
    let list = |items: &[&str]| -> JsValue {
        items
            .iter()
            .map(|s| JsValue::from_str(s))
            .collect::<js_sys::Array>()
            .into()
    };
    let cases: [(JsValue, &str); 10] = [
        (config(&[]), "`siteKey` is required"),
        (
            with("redact", "#card".into()),
            "`redact` must be a list of CSS selectors",
        ),
        (
            with("redact", list(&["#card", "!card"])),
            "`redact`: `!card` is not a valid CSS selector",
        ),
        (
            with("redact", list(&["[data-x=\"open"])),
            "`redact`: `[data-x=\"open` is not a valid CSS selector",
        ),
        (
            with("unredact", list(&["main >"])),
            "`unredact`: `main >` is not a valid CSS selector",
        ),
        (
            with("privateByDefault", "yes".into()),
            "`privateByDefault` must be true or false",
        ),
        (
            config(&[("siteKey", "t"), ("colour", "red")]),
            "unknown field `colour`",
        ),
        (
            config(&[("siteKey", "t"), ("broker", "http://")]),
            "`broker` is not a valid URL",
        ),
        (
            config(&[("siteKey", "t"), ("privacyUrl", "javascript:alert(1)")]),
            "`privacyUrl` must be an http(s) URL",
        ),
        (JsValue::from(3), "expected an object"),
    ];
    for (cfg, want) in cases {
        let err = AgentAssist::init(cfg, None, None).err().expect("rejected");
        let message = Reflect::get(&err, &"message".into())
            .unwrap()
            .as_string()
            .unwrap();
        assert!(
            message.contains(want),
            "{message:?} should contain {want:?}"
        );
        assert_eq!(
            Reflect::get(&err, &"code".into())
                .unwrap()
                .as_string()
                .as_deref(),
            Some("config")
        );
    }
}

#[wasm_bindgen_test]
fn the_consent_prompt_names_the_agent_as_text_and_esc_denies() {
    use crate::ui::consent_prompt::ConsentPrompt;
    let parent = container();
    let host = test_host("en");
    host.mount(&parent).unwrap();
    let answers = Rc::new(RefCell::new(Vec::new()));
    let seen = answers.clone();
    let hostile = "<img src=x onerror=alert(1)>";
    let prompt = ConsentPrompt::new(
        &doc(),
        &host.root,
        &Strings::for_locale("en"),
        hostile,
        Rc::new(move |allow| seen.borrow_mut().push(allow)),
    );
    let root = host.root.clone();
    let dialog: web_sys::HtmlDialogElement = q(&root, "dialog.consent").unchecked_into();
    assert!(dialog.open());
    let title = root
        .get_element_by_id(&dialog.get_attribute("aria-labelledby").unwrap())
        .unwrap();
    assert_eq!(text(&title), format!("Allow {hostile} to see this page?"));
    assert!(
        root.query_selector("img").unwrap().is_none(),
        "the name is text, not markup"
    );
    assert!(dialog.get_attribute("aria-describedby").is_some());
    assert_eq!(
        root.active_element().as_ref(),
        Some(&title),
        "focus starts on the question"
    );

    q(&root, "button.allow")
        .unchecked_ref::<web_sys::HtmlElement>()
        .click();
    q(&root, "button.deny")
        .unchecked_ref::<web_sys::HtmlElement>()
        .click();
    let esc = web_sys::Event::new_with_event_init_dict("cancel", &{
        let init = web_sys::EventInit::new();
        init.set_cancelable(true);
        init
    })
    .unwrap();
    dialog.dispatch_event(&esc).unwrap();
    assert!(
        esc.default_prevented(),
        "Esc does not just close the prompt"
    );
    assert_eq!(*answers.borrow(), [true, false, false]);

    prompt.set_busy(true);
    assert!(q(&root, "button.allow").has_attribute("disabled"));
    prompt.show_error("We couldn't send your answer. Please try again.");
    assert!(!q(&root, "button.allow").has_attribute("disabled"));
    assert_eq!(
        q(&root, "[role=alert]").text_content().unwrap(),
        "We couldn't send your answer. Please try again."
    );
    drop(prompt);
    assert!(root.query_selector("dialog.consent").unwrap().is_none());
}

#[wasm_bindgen_test]
fn the_indicator_is_a_status_in_the_top_layer_with_stop_sharing() {
    use crate::ui::indicator::Indicator;
    let parent = container();
    let host = test_host("fr");
    host.mount(&parent).unwrap();
    let ended = Rc::new(RefCell::new(0));
    let count = ended.clone();
    let indicator = Indicator::new(
        &doc(),
        &host.root,
        &Strings::for_locale("fr"),
        "Dana",
        Rc::new(move || *count.borrow_mut() += 1),
    );
    let root = host.root.clone();
    let pill = q(&root, ".indicator");
    assert_eq!(pill.get_attribute("role").as_deref(), Some("status"));
    assert!(
        pill.matches(":popover-open").unwrap(),
        "shown in the top layer"
    );
    assert_eq!(
        text(&q(&root, ".indicator-label")),
        "Votre écran est partagé avec Dana"
    );
    let stop = q(&root, ".indicator button");
    assert_eq!(text(&stop), "Arrêter le partage");
    stop.unchecked_ref::<web_sys::HtmlElement>().click();
    assert_eq!(*ended.borrow(), 1);
    indicator.show_ended("Dana a mis fin à la session.");
    assert!(root.query_selector(".indicator button").unwrap().is_none());
    assert_eq!(
        text(&q(&root, ".indicator-label")),
        "Dana a mis fin à la session."
    );
    drop(indicator);
    assert!(root.query_selector(".indicator").unwrap().is_none());
}

// ---------------------------------------------------------------------------
// Identity: the visitor id, `auth` modes, `identify()`, the form, `reset()`.
//
// Tests run interleaved on one page, so each uses its own site key (the
// visitor id's storage key includes it) and anything that breaks a browser
// API puts it back before its next `await`.

/// Records the JSON body of every `POST /v1/codes` the page sends, and
/// answers a site key starting with `refuse-` the way a broker refuses a
/// forged identity. Everything else goes on to the (absent) broker.
fn record_code_requests() {
    js_sys::eval(
        r#"if (!window.__aaBodies) {
          window.__aaBodies = [];
          const fetch = window.fetch;
          window.fetch = function (input, init) {
            if (!(input instanceof Request) || !input.url.endsWith("/v1/codes")) {
              return fetch.call(this, input, init);
            }
            return input.clone().text().then((text) => {
              const body = JSON.parse(text);
              window.__aaBodies.push(body);
              if (body.site_key.startsWith("refuse-")) {
                return new Response(
                  JSON.stringify({ error: "invalid_identity", message: "the token's signature is wrong" }),
                  { status: 401, headers: { "content-type": "application/json" } }
                );
              }
              return fetch.call(window, input, init);
            });
          };
        }"#,
    )
    .unwrap();
}

/// The code requests recorded for `site_key`, oldest first.
fn code_requests(site_key: &str) -> Vec<JsValue> {
    let all = Reflect::get(&web_sys::window().unwrap(), &"__aaBodies".into()).unwrap();
    js_sys::Array::from(&all)
        .iter()
        .filter(|b| field(b, "site_key").as_deref() == Some(site_key))
        .collect()
}

async fn nth_code_request(site_key: &str, n: usize) -> JsValue {
    until("the code request", || code_requests(site_key).len() > n).await;
    code_requests(site_key)[n].clone()
}

fn field(obj: &JsValue, key: &str) -> Option<String> {
    Reflect::get(obj, &key.into()).ok()?.as_string()
}

fn visitor_key(site_key: &str) -> String {
    ["agent-assist:visitor:", site_key].concat()
}

fn stored_id(site_key: &str) -> (Option<String>, Option<String>) {
    let w = web_sys::window().unwrap();
    let key = visitor_key(site_key);
    (
        w.local_storage().unwrap().unwrap().get_item(&key).unwrap(),
        w.session_storage()
            .unwrap()
            .unwrap()
            .get_item(&key)
            .unwrap(),
    )
}

fn is_hex_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn js(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap()
}

fn error_code(err: &JsValue) -> String {
    field(err, "code").unwrap_or_default()
}

fn error_message(err: &JsValue) -> String {
    field(err, "message").unwrap_or_default()
}

fn click(e: &Element) {
    e.unchecked_ref::<web_sys::HtmlElement>().click();
}

fn set_input(root: &ShadowRoot, selector: &str, value: &str) {
    Reflect::set(&q(root, selector), &"value".into(), &value.into()).unwrap();
}

/// What pressing Enter in a field does: submits the form the standard way.
fn submit(root: &ShadowRoot) {
    let form = q(root, "form");
    let request_submit: js_sys::Function = Reflect::get(&form, &"requestSubmit".into())
        .unwrap()
        .unchecked_into();
    request_submit.call0(&form).unwrap();
}

fn is_shown(e: &Element) -> bool {
    e.unchecked_ref::<web_sys::HtmlElement>()
        .offset_parent()
        .is_some()
}

#[wasm_bindgen_test]
async fn the_visitor_id_is_made_at_the_first_request_not_before_and_kept_in_local_storage() {
    record_code_requests();
    let site = "visitor-local";
    let before = storage_len();
    let parent = container();
    let aa = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE)]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    assert_eq!(storage_len(), before, "a mount writes nothing");
    assert_eq!(stored_id(site), (None, None), "no id before the click");

    aa.open().unwrap();
    let (id, in_session) = stored_id(site);
    let id = id.expect("the first request makes the id");
    assert!(is_hex_id(&id), "{id}");
    assert_eq!(in_session, None);
    let body = nth_code_request(site, 0).await;
    assert_eq!(field(&body, "visitor_id"), Some(id.clone()));
    for absent in ["visitor", "identity"] {
        assert!(
            Reflect::get(&body, &absent.into()).unwrap().is_undefined(),
            "{absent}"
        );
    }

    // Another widget of the site, on the same page (or a later visit).
    let other = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE)]),
        None,
        None,
    )
    .unwrap();
    other.open().unwrap();
    let body = nth_code_request(site, 1).await;
    assert_eq!(field(&body, "visitor_id"), Some(id), "the same visitor");
    aa.destroy();
    other.destroy();
}

#[wasm_bindgen_test]
async fn session_and_memory_storage_keep_the_id_where_the_site_chose() {
    record_code_requests();
    let site = "visitor-session";
    let aa = AgentAssist::init(
        config(&[
            ("siteKey", site),
            ("broker", NOWHERE),
            ("visitorStorage", "session"),
        ]),
        None,
        None,
    )
    .unwrap();
    aa.open().unwrap();
    let (local, session) = stored_id(site);
    assert_eq!(local, None);
    assert!(is_hex_id(&session.expect("kept in sessionStorage")));
    aa.destroy();

    let site = "visitor-memory";
    let aa = AgentAssist::init(
        config(&[
            ("siteKey", site),
            ("broker", NOWHERE),
            ("visitorStorage", "memory"),
        ]),
        None,
        None,
    )
    .unwrap();
    aa.open().unwrap();
    assert_eq!(stored_id(site), (None, None), "memory is never persisted");
    let body = nth_code_request(site, 0).await;
    let id = field(&body, "visitor_id").expect("an id all the same");
    assert!(is_hex_id(&id), "{id}");
    aa.close().unwrap();
    aa.open().unwrap();
    let body = nth_code_request(site, 1).await;
    assert_eq!(field(&body, "visitor_id"), Some(id), "stable for the page");
    assert_eq!(stored_id(site), (None, None));
    aa.destroy();
}

#[wasm_bindgen_test]
async fn blocked_storage_falls_back_to_memory_without_errors() {
    record_code_requests();
    // A sandboxed frame's getter throws; some private modes give null.
    let block = |how: &str| {
        js_sys::eval(
            &[
                "window.__aaLocal = Object.getOwnPropertyDescriptor(window, 'localStorage');\
             Object.defineProperty(window, 'localStorage', { configurable: true, get() { ",
                how,
                " } });",
            ]
            .concat(),
        )
        .unwrap();
    };
    let unblock = || {
        js_sys::eval(
            "if (window.__aaLocal) Object.defineProperty(window, 'localStorage', window.__aaLocal);\
             else delete window.localStorage;",
        )
        .unwrap();
    };
    for (site, how) in [
        (
            "blocked-throws",
            "throw new DOMException('blocked', 'SecurityError');",
        ),
        ("blocked-null", "return null;"),
    ] {
        // No await until storage is back: other tests share the page.
        block(how);
        let blocked = web_sys::window().unwrap().local_storage();
        assert!(
            matches!(blocked, Err(_) | Ok(None)),
            "{site}: storage is blocked"
        );
        let aa = AgentAssist::init(
            config(&[("siteKey", site), ("broker", NOWHERE)]),
            None,
            None,
        )
        .unwrap();
        let opened = aa.open();
        let closed = aa.close();
        let opened_again = aa.open();
        unblock();
        assert!(
            opened.is_ok() && closed.is_ok() && opened_again.is_ok(),
            "{site}: no error"
        );
        assert_eq!(stored_id(site), (None, None), "{site}");
        let first = field(&nth_code_request(site, 0).await, "visitor_id").expect("an id");
        assert!(is_hex_id(&first), "{site}: {first}");
        let second = field(&nth_code_request(site, 1).await, "visitor_id");
        assert_eq!(second, Some(first), "{site}: kept in memory");
        aa.destroy();
    }
}

#[wasm_bindgen_test]
async fn reset_forgets_the_visitor_id_and_the_next_request_makes_a_new_one() {
    record_code_requests();
    let site = "visitor-reset";
    let parent = container();
    let aa = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE)]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();
    let first = stored_id(site).0.expect("an id");
    aa.reset().unwrap();
    assert_eq!(stored_id(site), (None, None), "forgotten on this browser");
    let dialog: web_sys::HtmlDialogElement = q(&shadow(&parent), "dialog").unchecked_into();
    assert!(!dialog.open(), "reset closes the modal");

    aa.open().unwrap();
    let second = stored_id(site).0.expect("a new id");
    assert_ne!(first, second);
    assert_eq!(
        field(&nth_code_request(site, 0).await, "visitor_id"),
        Some(first)
    );
    assert_eq!(
        field(&nth_code_request(site, 1).await, "visitor_id"),
        Some(second)
    );
    aa.destroy();
}

#[wasm_bindgen_test]
async fn code_mode_hides_the_link_until_identify_and_sends_the_identity() {
    record_code_requests();
    let site = "code-site";
    let parent = container();
    let aa = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE), ("auth", "code")]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    let root = shadow(&parent);
    let link = q(&root, "button.link");
    assert!(
        link.has_attribute("hidden") && !is_shown(&link),
        "hidden until identify"
    );

    let err = aa.open().unwrap_err();
    assert_eq!(error_code(&err), "identity_required");
    assert!(
        error_message(&err).contains("identify()"),
        "{}",
        error_message(&err)
    );
    assert!(root.query_selector("dialog").unwrap().is_none());
    let err = wasm_bindgen_futures::JsFuture::from(aa.create_session_code(JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(error_code(&err), "identity_required");
    assert!(
        code_requests(site).is_empty(),
        "nothing sent without an identity"
    );

    aa.identify(js(
        r#"{ "userId": "u-1", "name": "Jo Visitor", "email": "jo@example.com",
        "customData": { "plan": "pro", "account": "A-7" }, "token": "signed.by.server" }"#,
    ))
    .unwrap();
    assert!(
        !link.has_attribute("hidden") && is_shown(&link),
        "shown after identify"
    );
    click(&link);
    let identity = Reflect::get(&nth_code_request(site, 0).await, &"identity".into()).unwrap();
    assert_eq!(field(&identity, "user_id").as_deref(), Some("u-1"));
    assert_eq!(field(&identity, "name").as_deref(), Some("Jo Visitor"));
    assert_eq!(field(&identity, "email").as_deref(), Some("jo@example.com"));
    assert_eq!(
        field(&identity, "token").as_deref(),
        Some("signed.by.server")
    );
    let custom = Reflect::get(&identity, &"custom_data".into()).unwrap();
    assert_eq!(
        field(&custom, "plan").as_deref(),
        Some("pro"),
        "a plain object, not a Map"
    );
    assert_eq!(field(&custom, "account").as_deref(), Some("A-7"));

    // Logout: the link hides again until the next identify().
    aa.reset().unwrap();
    assert!(link.has_attribute("hidden") && !is_shown(&link));
    assert_eq!(error_code(&aa.open().unwrap_err()), "identity_required");
    aa.destroy();
}

#[wasm_bindgen_test]
fn identify_rejects_a_bad_object_naming_the_field() {
    let parent = container();
    let aa = AgentAssist::init(
        config(&[
            ("siteKey", "identify-checks"),
            ("broker", NOWHERE),
            ("auth", "code"),
        ]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    let long_name = [
        "{\"userId\":\"u\",\"token\":\"t\",\"name\":\"",
        &"x".repeat(201),
        "\"}",
    ]
    .concat();
    let many = (0..21)
        .map(|i| ["\"k", &i.to_string(), "\":\"v\""].concat())
        .collect::<Vec<_>>()
        .join(",");
    let too_many = [
        "{\"userId\":\"u\",\"token\":\"t\",\"customData\":{",
        &many,
        "}}",
    ]
    .concat();
    let cases: [(&str, &str); 11] = [
        ("3", "expected an object"),
        ("{}", "`userId` is required"),
        (
            r#"{"userId": 7, "token": "t"}"#,
            "`userId` must be a string",
        ),
        (r#"{"userID": "u", "token": "t"}"#, "unknown field `userID`"),
        (r#"{"userId": "u"}"#, "`token` is required"),
        (r#"{"userId": "u", "token": ""}"#, "`token` is required"),
        (
            r#"{"userId": "u", "token": "t", "email": "jo@example"}"#,
            "`email` is not an email address",
        ),
        (
            r#"{"userId": "u", "token": "t", "customData": ["pro"]}"#,
            "`customData` must be an object of strings",
        ),
        (
            r#"{"userId": "u", "token": "t", "customData": {"visits": 3}}"#,
            "`customData.visits` must be a string",
        ),
        (&long_name, "`name` is longer than 200 characters"),
        (&too_many, "`customData` has more than 20 entries"),
    ];
    for (value, want) in cases {
        let err = aa.identify(js(value)).unwrap_err();
        let message = error_message(&err);
        assert!(
            message.contains(want),
            "{message:?} should contain {want:?}"
        );
        assert!(message.contains("identify()"), "{message:?} names the call");
        assert_eq!(error_code(&err), "invalid_argument");
    }
    assert!(
        q(&shadow(&parent), "button.link").has_attribute("hidden"),
        "a refused identity shows nothing"
    );
    aa.destroy();
}

#[wasm_bindgen_test]
async fn the_form_asks_name_and_email_with_labels_and_announced_errors_before_any_request() {
    record_code_requests();
    let site = "form-site";
    let parent = container();
    let aa = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE), ("auth", "form")]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();
    let root = shadow(&parent);

    // The same modal: its title and notices, the form where the code goes.
    let dialog: web_sys::HtmlDialogElement = q(&root, "dialog").unchecked_into();
    assert!(dialog.open());
    assert_eq!(text(&q(&root, "h2")), "Share your screen with support");
    assert_eq!(
        root.query_selector_all("ul.notices li").unwrap().length(),
        5
    );
    let form = q(&root, ".panel form");
    assert!(
        form.has_attribute("novalidate"),
        "our messages, not the browser's"
    );
    assert!(root.query_selector(".skeleton").unwrap().is_none());
    assert!(
        root.query_selector("button.guest").unwrap().is_none(),
        "no guest in `form`"
    );
    for (id, label, autocomplete, kind) in [
        ("aa-name", "Your name", "name", "text"),
        ("aa-email", "Your email", "email", "email"),
    ] {
        let input = q(&root, &["#", id].concat());
        let label_el = q(&root, &["label[for=", id, "]"].concat());
        assert_eq!(text(&label_el), label);
        assert_eq!(
            input.get_attribute("autocomplete").as_deref(),
            Some(autocomplete)
        );
        assert_eq!(input.get_attribute("type").as_deref(), Some(kind));
        assert!(input.has_attribute("required"), "{id} is required");
        assert_eq!(input.get_attribute("aria-invalid"), None);
    }
    let submit_button = q(&root, "form button[type=submit]");
    assert_eq!(text(&submit_button), "Get my code");

    let described = |id: &str| {
        let input = q(&root, &["#", id].concat());
        let by = input
            .get_attribute("aria-describedby")
            .expect("aria-describedby");
        text(&root.get_element_by_id(&by).expect("the message element"))
    };
    let invalid = |id: &str| q(&root, &["#", id].concat()).get_attribute("aria-invalid");
    let focused = || root.active_element().and_then(|e| e.get_attribute("id"));

    // Empty: both fields at fault, focus on the first.
    submit(&root);
    assert_eq!(invalid("aa-name").as_deref(), Some("true"));
    assert_eq!(invalid("aa-email").as_deref(), Some("true"));
    assert_eq!(described("aa-name"), "Enter your name.");
    assert_eq!(described("aa-email"), "Enter your email address.");
    assert_eq!(focused().as_deref(), Some("aa-name"));

    // A name and a typo in the email: only the email is at fault.
    set_input(&root, "#aa-name", "  Jo Visitor ");
    set_input(&root, "#aa-email", "jo@example");
    submit(&root);
    assert_eq!(invalid("aa-name"), None);
    assert_eq!(described("aa-name"), "");
    assert_eq!(
        described("aa-email"),
        "Enter an email address like name@example.com."
    );
    assert_eq!(focused().as_deref(), Some("aa-email"));
    // Enter again in the same field: focus does not move, so the live
    // region says it.
    submit(&root);
    assert_eq!(
        text(&q(&root, "[role=status]")),
        "Enter an email address like name@example.com."
    );
    assert_eq!(
        stored_id(site),
        (None, None),
        "no request, so no visitor id yet"
    );
    TimeoutFuture::new(50).await;
    assert!(
        code_requests(site).is_empty(),
        "nothing sent while the form is wrong"
    );

    set_input(&root, "#aa-email", "jo@example.com");
    // The panel, not the dialog: this test window is short enough that the
    // dialog is capped at the viewport's height and scrolls.
    let panel: web_sys::HtmlElement = q(&root, ".panel").unchecked_into();
    let panel_before = panel.offset_height();
    submit(&root);
    assert!(
        root.query_selector("form").unwrap().is_none(),
        "the form gives way to the code"
    );
    assert!(root.query_selector(".skeleton").unwrap().is_some());
    assert_eq!(
        panel.offset_height(),
        panel_before,
        "the modal does not shrink"
    );
    let body = nth_code_request(site, 0).await;
    let visitor = Reflect::get(&body, &"visitor".into()).unwrap();
    assert_eq!(field(&visitor, "name").as_deref(), Some("Jo Visitor"));
    assert_eq!(field(&visitor, "email").as_deref(), Some("jo@example.com"));
    assert!(is_hex_id(&field(&body, "visitor_id").unwrap()));

    // "Try again" after the (unreachable) broker: the same data, no form.
    until("the error state", || {
        root.query_selector("button.retry").unwrap().is_some()
    })
    .await;
    click(&q(&root, "button.retry"));
    let again = Reflect::get(&nth_code_request(site, 1).await, &"visitor".into()).unwrap();
    assert_eq!(field(&again, "email").as_deref(), Some("jo@example.com"));
    aa.destroy();
}

#[wasm_bindgen_test]
async fn optional_form_offers_continue_as_guest_in_french() {
    record_code_requests();
    let site = "optional-form-site";
    let parent = container();
    let aa = AgentAssist::init(
        config(&[
            ("siteKey", site),
            ("broker", NOWHERE),
            ("auth", "optional-form"),
            ("locale", "fr"),
        ]),
        None,
        None,
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();
    let root = shadow(&parent);
    assert_eq!(text(&q(&root, "label[for=aa-name]")), "Votre nom");
    let guest = q(&root, "form button.guest");
    assert_eq!(text(&guest), "Continuer sans m'identifier");
    assert_eq!(guest.get_attribute("type").as_deref(), Some("button"));
    click(&guest);
    let body = nth_code_request(site, 0).await;
    assert!(
        Reflect::get(&body, &"visitor".into())
            .unwrap()
            .is_undefined(),
        "a guest sends no visitor data"
    );
    assert!(is_hex_id(&field(&body, "visitor_id").unwrap()));
    aa.destroy();
}

#[wasm_bindgen_test]
async fn a_refused_identity_says_so_plainly_and_tells_the_site() {
    record_code_requests();
    let parent = container();
    let aa = AgentAssist::init(
        config(&[("siteKey", "refuse-identity"), ("broker", NOWHERE)]),
        None,
        None,
    )
    .unwrap();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let log = seen.clone();
    let listener =
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |detail: JsValue| {
            log.borrow_mut()
                .push((error_code(&detail), error_message(&detail)));
        });
    aa.on(
        "error",
        listener
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    )
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.identify(js(r#"{ "userId": "u-1", "token": "forged" }"#))
        .unwrap();
    aa.open().unwrap();
    let root = shadow(&parent);
    until("the refusal", || {
        root.query_selector(".message.error").unwrap().is_some()
    })
    .await;
    let message = "We couldn't confirm who you are. Please reload the page and try again.";
    assert_eq!(text(&q(&root, ".message.error")), message);
    let status = q(&root, "[role=status]");
    until("the refusal is announced", || text(&status) == message).await;
    assert!(
        root.query_selector("button.retry").unwrap().is_none(),
        "trying again would not help"
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "invalid_identity");
    // The developer's console line is this message: it names the code.
    assert!(seen[0].1.contains("invalid_identity"), "{}", seen[0].1);
    aa.destroy();
}

#[wasm_bindgen_test]
async fn a_custom_ui_passes_its_own_form_data_checked_like_identify() {
    record_code_requests();
    let site = "custom-form-site";
    let aa = AgentAssist::init(
        config(&[("siteKey", site), ("broker", NOWHERE), ("auth", "form")]),
        None,
        None,
    )
    .unwrap();
    let bad = aa.create_session_code(js(r#"{ "name": "Jo", "email": "jo@example" }"#));
    let err = wasm_bindgen_futures::JsFuture::from(bad).await.unwrap_err();
    assert_eq!(error_code(&err), "invalid_argument");
    assert!(error_message(&err).contains("createSessionCode(): `email`"));
    let bad = aa.create_session_code(js(r#"{ "mail": "jo@example.com" }"#));
    let err = wasm_bindgen_futures::JsFuture::from(bad).await.unwrap_err();
    assert!(error_message(&err).contains("unknown field `mail`"));
    assert!(code_requests(site).is_empty());

    let _pending = aa.create_session_code(js(r#"{ "name": "Jo", "email": "jo@example.com" }"#));
    let visitor = Reflect::get(&nth_code_request(site, 0).await, &"visitor".into()).unwrap();
    assert_eq!(field(&visitor, "name").as_deref(), Some("Jo"));
    assert_eq!(field(&visitor, "email").as_deref(), Some("jo@example.com"));
    aa.destroy();
}

/// A page focus listener that calls the widget while the widget moves focus
/// (the modal opening takes focus from the page's own button) is served
/// once the widget's update is over. It used to hit the controller's
/// borrow: a panic, thrown into the page as `RuntimeError: unreachable`.
#[wasm_bindgen_test]
async fn a_focus_listener_calling_the_widget_mid_update_is_served_after_the_update() {
    let parent = container();
    let own_button = doc().create_element("button").unwrap();
    parent.append_child(&own_button).unwrap();
    let aa = Rc::new(
        AgentAssist::init(config(&[("siteKey", "t"), ("broker", NOWHERE)]), None, None).unwrap(),
    );
    aa.mount_footer_link(parent.clone().into()).unwrap();
    // The site's button has focus when it opens the modal.
    own_button
        .unchecked_ref::<web_sys::HtmlElement>()
        .focus()
        .unwrap();

    let thrown = Rc::new(RefCell::new(0));
    let count = thrown.clone();
    let on_page_error =
        wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            *count.borrow_mut() += 1;
        });
    let window = web_sys::window().unwrap();
    window
        .add_event_listener_with_callback("error", on_page_error.as_ref().unchecked_ref())
        .unwrap();

    let errors = Rc::new(RefCell::new(0));
    let count = errors.clone();
    let on_error = wasm_bindgen::closure::Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        *count.borrow_mut() += 1;
    });
    let on_error: js_sys::Function = on_error
        .as_ref()
        .unchecked_ref::<js_sys::Function>()
        .clone();
    let widget = aa.clone();
    let on_focus = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
        // The page's own call: it must neither throw nor be lost.
        widget.on("error", on_error.clone()).unwrap();
    });
    doc()
        .add_event_listener_with_callback("focusin", on_focus.as_ref().unchecked_ref())
        .unwrap();

    aa.open().unwrap();
    let root = shadow(&parent);
    until("the error state", || {
        root.query_selector("button.retry").unwrap().is_some()
    })
    .await;
    let dialog: web_sys::HtmlDialogElement = q(&root, "dialog").unchecked_into();
    assert!(dialog.open());
    // The listener the page added from its focus listener hears the next error.
    click(&q(&root, "button.retry"));
    until("the page's error listener is called", || {
        *errors.borrow() > 0
    })
    .await;
    assert_eq!(*thrown.borrow(), 0, "nothing was thrown into the page");

    doc()
        .remove_event_listener_with_callback("focusin", on_focus.as_ref().unchecked_ref())
        .unwrap();
    window
        .remove_event_listener_with_callback("error", on_page_error.as_ref().unchecked_ref())
        .unwrap();
    aa.destroy();
}
