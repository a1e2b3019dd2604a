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
    let aa = AgentAssist::init(config(&[("siteKey", "t"), ("broker", NOWHERE)])).unwrap();
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
    let aa = AgentAssist::init(config(&[
        ("siteKey", "t"),
        ("broker", NOWHERE),
        ("privacyUrl", "/privacy"),
    ]))
    .unwrap();
    aa.mount_footer_link(parent.clone().into()).unwrap();
    aa.open().unwrap();

    let root = shadow(&parent);
    let dialog: web_sys::HtmlDialogElement = q(&root, "dialog").unchecked_into();
    assert!(dialog.open(), "open() shows the dialog");
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
    assert_eq!(
        root.active_element().as_ref(),
        Some(&q(&root, "button.close"))
    );

    // While the request is in flight: a placeholder of the code's size.
    assert!(root.query_selector(".skeleton").unwrap().is_some());
    assert_eq!(
        q(&root, ".panel").get_attribute("aria-busy").as_deref(),
        Some("true")
    );
    let status = q(&root, "[role=status]");
    assert_eq!(text(&status), "Getting your code…");

    until("the error state", || {
        root.query_selector("button.retry").unwrap().is_some()
    })
    .await;
    let message = q(&root, ".message.error");
    assert!(text(&message).starts_with("We couldn't reach our support service."));
    assert_eq!(text(&status), text(&message), "the error is announced");
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
    let host = Host::new(&doc(), crate::config::Theme::Auto, "en").unwrap();
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
    let aa = AgentAssist::init(cfg).unwrap();
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
    let aa = AgentAssist::init(config(&[("siteKey", "t"), ("broker", NOWHERE)])).unwrap();
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
    let cases: [(JsValue, &str); 5] = [
        (config(&[]), "`siteKey` is required"),
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
        let err = AgentAssist::init(cfg).err().expect("rejected");
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
    let host = Host::new(&doc(), crate::config::Theme::Auto, "en").unwrap();
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
    let host = Host::new(&doc(), crate::config::Theme::Auto, "fr").unwrap();
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
        "Partage de cette page avec Dana"
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
