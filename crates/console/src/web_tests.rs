//! DOM behaviour in headless Chromium (wasm-bindgen-test): the code boxes
//! (typing, paste, Backspace, arrows, auto-submit, busy, reject, lock), the
//! sign-in form, the session panel's states, the visitor's identity and
//! history and the handling of untrusted visitor data, and the console
//! against a broker that is not there.
//!
//! Only a broker that is not there (`127.0.0.1:9`, the discard port) is
//! used here; the real broker is exercised by the Playwright suite.

use crate::app::{App, TOKEN_KEY};
use crate::code_entry::CodeEntry;
use crate::session_panel::{PanelAction, SessionPanel};
use crate::sign_in::SignIn;
use crate::text::say;
use agent_assist_protocol::{
    EndReason, IdentityKind, SessionState, SessionStatus, Ticket, VisitorView,
};
use gloo_timers::future::TimeoutFuture;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{
    ClipboardEvent, ClipboardEventInit, DataTransfer, Document, Element, HtmlElement,
    HtmlInputElement, InputEvent, InputEventInit, KeyboardEvent, KeyboardEventInit,
};

wasm_bindgen_test_configure!(run_in_browser);

const NOWHERE: &str = "http://127.0.0.1:9";

fn doc() -> Document {
    web_sys::window().unwrap().document().unwrap()
}

/// A fresh container in the body, so tests do not see each other's nodes.
fn container() -> Element {
    let div = doc().create_element("div").unwrap();
    doc().body().unwrap().append_child(&div).unwrap();
    div
}

fn mount(parent: &Element, child: &Element) {
    parent.append_child(child).unwrap();
}

fn q(root: &Element, selector: &str) -> Element {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no `{selector}`"))
}

fn text(e: &Element) -> String {
    e.text_content().unwrap_or_default()
}

fn boxes(root: &Element) -> Vec<HtmlInputElement> {
    let list = root.query_selector_all("input.digit").unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().unchecked_into())
        .collect()
}

fn values(boxes: &[HtmlInputElement]) -> String {
    boxes
        .iter()
        .map(|b| match b.value().as_str() {
            "" => "_".to_owned(),
            v => v.to_owned(),
        })
        .collect()
}

fn focused() -> Option<Element> {
    doc().active_element()
}

fn is_focused(e: &Element) -> bool {
    focused().as_ref() == Some(e)
}

fn key(target: &Element, key: &str) {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let e = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    target.dispatch_event(&e).unwrap();
}

fn paste(target: &Element, clip: &str) {
    let data = DataTransfer::new().unwrap();
    data.set_data("text/plain", clip).unwrap();
    let init = ClipboardEventInit::new();
    init.set_clipboard_data(Some(&data));
    init.set_bubbles(true);
    init.set_cancelable(true);
    let e = ClipboardEvent::new_with_event_init_dict("paste", &init).unwrap();
    target.dispatch_event(&e).unwrap();
}

/// What a virtual keyboard does: the character lands in the box, then `input`.
fn soft_type(target: &HtmlInputElement, data: &str) {
    target.set_value(&[target.value().as_str(), data].concat());
    let init = InputEventInit::new();
    init.set_data(Some(data));
    init.set_input_type("insertText");
    init.set_bubbles(true);
    let e = InputEvent::new_with_event_init_dict("input", &init).unwrap();
    target.dispatch_event(&e).unwrap();
}

/// Lets the console handle what was just posted (its messages are handled
/// in a microtask), but not yet any network answer.
async fn microtask() {
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&wasm_bindgen::JsValue::NULL))
        .await
        .unwrap();
}

/// Waits until `cond` holds (at most 5 s), for things the network decides.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        TimeoutFuture::new(10).await;
    }
    panic!("timed out waiting for {what}");
}

type Submitted = Rc<RefCell<Vec<String>>>;

fn code_entry() -> (Element, CodeEntry, Submitted) {
    let root = container();
    let submitted: Submitted = Rc::default();
    let s = submitted.clone();
    let entry = CodeEntry::new(&doc(), Rc::new(move |code| s.borrow_mut().push(code)));
    mount(&root, entry.element());
    (root, entry, submitted)
}

#[wasm_bindgen_test]
fn code_boxes_are_six_labelled_numeric_fields_in_a_named_group_of_three_and_three() {
    let (root, _entry, _) = code_entry();
    let b = boxes(&root);
    assert_eq!(b.len(), 6);
    for (i, input) in b.iter().enumerate() {
        assert_eq!(input.get_attribute("inputmode").as_deref(), Some("numeric"));
        let label = format!("Digit {} of 6", i + 1);
        assert_eq!(input.get_attribute("aria-label"), Some(label));
    }
    assert_eq!(root.query_selector_all(".digit-group").unwrap().length(), 2);
    assert_eq!(
        root.query_selector_all(".digit-group:first-child input.digit")
            .unwrap()
            .length(),
        3
    );
    assert_eq!(text(&q(&root, "fieldset legend")), "Support code");
    let connect = q(&root, "button[type=submit]");
    assert_eq!(text(&connect), "Connect");
    assert_eq!(
        q(&root, ".alert").get_attribute("role").as_deref(),
        Some("alert")
    );
}

#[wasm_bindgen_test]
async fn typing_digits_fills_the_boxes_and_the_sixth_submits() {
    let (root, entry, submitted) = code_entry();
    let b = boxes(&root);
    entry.focus_first();
    assert!(is_focused(&b[0]));
    for (i, d) in ["1", "2", "3", "4", "5"].iter().enumerate() {
        key(&b[i], d);
        assert!(
            is_focused(&b[i + 1]),
            "focus moves on after digit {}",
            i + 1
        );
    }
    assert_eq!(values(&b), "12345_");
    assert!(
        submitted.borrow().is_empty(),
        "no submit before the sixth digit"
    );
    key(&b[5], "6");
    assert_eq!(values(&b), "123456");
    assert_eq!(*submitted.borrow(), vec!["123456".to_owned()]);
}

#[wasm_bindgen_test]
fn non_digits_are_ignored() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    entry.focus_first();
    for k in ["a", " ", "-", "é", "+"] {
        key(&b[0], k);
    }
    assert_eq!(values(&b), "______");
    assert!(is_focused(&b[0]));
    // A virtual keyboard that lets a letter in: it is taken out again.
    soft_type(&b[0], "x");
    assert_eq!(b[0].value(), "");
}

#[wasm_bindgen_test]
fn input_without_a_key_event_is_handled_too() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    entry.focus_first();
    soft_type(&b[0], "7");
    assert_eq!(values(&b), "7_____");
    assert!(is_focused(&b[1]));
    // Typing over a digit replaces it rather than adding a second one.
    soft_type(&b[0], "8");
    assert_eq!(values(&b), "8_____");
}

#[wasm_bindgen_test]
fn backspace_clears_then_moves_back_across_boxes() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    entry.focus_first();
    for (i, d) in ["4", "5", "6"].iter().enumerate() {
        key(&b[i], d);
    }
    assert!(is_focused(&b[3]));
    // Box 4 is empty: Backspace clears box 3 and moves there.
    key(&b[3], "Backspace");
    assert_eq!(values(&b), "45____");
    assert!(is_focused(&b[2]));
    // Box 3 is now empty too: the next one goes back to box 2.
    key(&b[2], "Backspace");
    assert_eq!(values(&b), "4_____");
    assert!(is_focused(&b[1]));
    // A box with a digit is cleared in place.
    b[0].focus().unwrap();
    key(&b[0], "Backspace");
    assert_eq!(values(&b), "______");
    assert!(is_focused(&b[0]));
    // Nothing before the first box.
    key(&b[0], "Backspace");
    assert!(is_focused(&b[0]));
}

#[wasm_bindgen_test]
fn arrows_home_and_end_move_between_boxes() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    entry.focus_first();
    key(&b[0], "ArrowRight");
    assert!(is_focused(&b[1]));
    key(&b[1], "ArrowRight");
    key(&b[2], "ArrowRight");
    assert!(is_focused(&b[3]));
    key(&b[3], "ArrowLeft");
    assert!(is_focused(&b[2]));
    key(&b[2], "End");
    assert!(is_focused(&b[5]));
    key(&b[5], "ArrowRight");
    assert!(is_focused(&b[5]));
    key(&b[5], "Home");
    assert!(is_focused(&b[0]));
    key(&b[0], "ArrowLeft");
    assert!(is_focused(&b[0]));
}

#[wasm_bindgen_test]
fn a_code_pasted_into_any_box_fills_all_six_and_submits() {
    for (clip, into) in [
        ("123456", 0),
        ("123 456", 3),
        ("123-456", 4),
        ("  987 654 ", 5),
    ] {
        let (root, _entry, submitted) = code_entry();
        let b = boxes(&root);
        b[into].focus().unwrap();
        paste(&b[into], clip);
        let digits: String = clip.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(values(&b), digits, "{clip:?} pasted into box {}", into + 1);
        assert_eq!(*submitted.borrow(), vec![digits], "{clip:?}");
    }
}

#[wasm_bindgen_test]
fn a_partial_paste_fills_from_the_box_and_a_non_code_is_refused() {
    let (root, _entry, submitted) = code_entry();
    let b = boxes(&root);
    b[2].focus().unwrap();
    paste(&b[2], "12");
    assert_eq!(values(&b), "__12__");
    assert!(is_focused(&b[4]));
    paste(&b[4], "hello");
    assert_eq!(values(&b), "__12__");
    assert_eq!(text(&q(&root, "[role=alert]")), say::BAD_PASTE);
    assert!(submitted.borrow().is_empty());
}

#[wasm_bindgen_test]
fn connect_with_missing_digits_points_at_the_gap() {
    let (root, _entry, submitted) = code_entry();
    let b = boxes(&root);
    b[0].focus().unwrap();
    paste(&b[0], "123");
    q(&root, "button[type=submit]")
        .unchecked_into::<HtmlElement>()
        .click();
    assert!(submitted.borrow().is_empty());
    assert_eq!(text(&q(&root, "[role=alert]")), say::CODE_INCOMPLETE);
    assert!(is_focused(&b[3]));
}

#[wasm_bindgen_test]
fn while_connecting_the_boxes_are_disabled_and_a_status_says_so() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    paste(&b[0], "123456");
    entry.set_busy(true);
    assert!(q(&root, "fieldset").has_attribute("disabled"));
    assert!(b.iter().all(|b| b.matches(":disabled").unwrap()));
    assert_eq!(text(&q(&root, "[role=status]")), "Connecting\u{2026}");
    entry.set_busy(false);
    assert!(b.iter().all(|b| !b.matches(":disabled").unwrap()));
    assert_eq!(text(&q(&root, "[role=status]")), "");
}

#[wasm_bindgen_test]
fn a_rejected_code_is_cleared_with_a_message_and_focus_back_on_the_first_box() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    paste(&b[0], "123456");
    entry.set_busy(true);
    entry.reject(&crate::text::no_such_code("123456"));
    assert_eq!(values(&b), "______");
    assert_eq!(
        text(&q(&root, "[role=alert]")),
        "No live code matches 123 456. Check the digits with the visitor."
    );
    assert!(is_focused(&b[0]));
    // Typing again clears the message.
    key(&b[0], "9");
    assert_eq!(text(&q(&root, "[role=alert]")), "");
}

#[wasm_bindgen_test]
async fn the_lock_disables_the_boxes_counts_down_and_lifts_by_itself() {
    let (root, entry, _) = code_entry();
    let b = boxes(&root);
    entry.lock(1);
    assert!(b.iter().all(|b| b.matches(":disabled").unwrap()));
    assert!(q(&root, "button[type=submit]")
        .matches(":disabled")
        .unwrap());
    assert_eq!(
        text(&q(&root, "[role=alert]")),
        "Too many wrong codes. Try again in 1 s."
    );
    let note = q(&root, ".lock-note");
    assert!(!note.has_attribute("hidden"));
    assert_eq!(text(&note), "Code entry unlocks in 0:01");
    until("the lock to lift", || !b[0].matches(":disabled").unwrap()).await;
    assert_eq!(text(&q(&root, "[role=alert]")), "");
    assert!(note.has_attribute("hidden"));
    assert_eq!(text(&q(&root, "[role=status]")), say::UNLOCKED);
    assert!(is_focused(&b[0]));
}

#[wasm_bindgen_test]
async fn dropping_a_locked_card_removes_it_and_cancels_its_timers() {
    let (root, entry, _) = code_entry();
    entry.lock(1);
    drop(entry);
    assert_eq!(root.child_element_count(), 0);
    // Had the timers survived, unlocking would now touch dropped state.
    TimeoutFuture::new(1100).await;
}

fn sign_in() -> (Element, SignIn, Submitted) {
    let root = container();
    let submitted: Submitted = Rc::default();
    let s = submitted.clone();
    let form = SignIn::new(&doc(), Rc::new(move |t| s.borrow_mut().push(t)));
    mount(&root, form.element());
    (root, form, submitted)
}

#[wasm_bindgen_test]
fn sign_in_has_a_labelled_password_field_and_refuses_an_empty_one() {
    let (root, form, submitted) = sign_in();
    let input: HtmlInputElement = q(&root, "input").unchecked_into();
    assert_eq!(input.type_(), "password");
    let label = q(&root, "label");
    assert!(label.contains(Some(&input)));
    assert_eq!(text(&label), "Agent token");

    form.focus();
    input.set_value("   ");
    q(&root, "button[type=submit]")
        .unchecked_into::<HtmlElement>()
        .click();
    assert!(submitted.borrow().is_empty());
    assert_eq!(text(&q(&root, "[role=alert]")), say::TOKEN_EMPTY);

    input.set_value("  aat_secret \n");
    q(&root, "button[type=submit]")
        .unchecked_into::<HtmlElement>()
        .click();
    assert_eq!(*submitted.borrow(), vec!["aat_secret".to_owned()]);
    form.set_busy(true);
    assert!(input.disabled());
    assert_eq!(text(&q(&root, "button")), say::SIGNING_IN);
    form.show_error("nope");
    assert!(!input.disabled());
    assert_eq!(text(&q(&root, "[role=alert]")), "nope");
}

const HOSTILE: &str = "<img src=x onerror=\"window.__pwned=1\">";

fn status(state: SessionState, end_reason: Option<EndReason>) -> SessionStatus {
    SessionStatus {
        session_id: "ses_1".into(),
        state,
        end_reason,
        expires_at: 0,
        agent: None,
        consent_expires_at: None,
    }
}

type Actions = Rc<RefCell<Vec<PanelAction>>>;

fn panel(visitor: VisitorView) -> (Element, SessionPanel, Actions) {
    let root = container();
    let actions: Actions = Rc::default();
    let a = actions.clone();
    let panel = SessionPanel::new(
        &doc(),
        "ses_1",
        &visitor,
        Rc::new(move |x| a.borrow_mut().push(x)),
    );
    mount(&root, panel.element());
    (root, panel, actions)
}

/// A visitor who gave nothing, with no history.
fn anonymous(display_name: &str) -> VisitorView {
    VisitorView {
        display_name: display_name.into(),
        name: None,
        email: None,
        kind: IdentityKind::Anonymous,
        user_id: None,
        custom_data: None,
        tickets: Vec::new(),
    }
}

fn ticket(
    session_id: &str,
    created_at: u64,
    state: SessionState,
    end: Option<EndReason>,
    agent: Option<&str>,
) -> Ticket {
    Ticket {
        session_id: session_id.into(),
        created_at,
        state,
        end_reason: end,
        agent_name: agent.map(Into::into),
    }
}

fn texts(root: &Element, selector: &str) -> Vec<String> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().text_content().unwrap_or_default())
        .collect()
}

fn shown(e: &Element) -> bool {
    !e.has_attribute("hidden") && e.closest("[hidden]").unwrap().is_none()
}

/// 2025-03-14T15:09:00Z and a day before, in milliseconds.
const MARCH_14: u64 = 1_741_964_940_000;
const DAY: u64 = 86_400_000;

#[wasm_bindgen_test]
fn visitor_data_is_shown_as_text_never_as_html() {
    let custom = [
        (
            HOSTILE.to_owned(),
            "<script>window.__pwned=2</script>".to_owned(),
        ),
        ("plan".to_owned(), HOSTILE.to_owned()),
    ];
    let (root, _panel, _) = panel(VisitorView {
        display_name: HOSTILE.into(),
        name: Some(HOSTILE.into()),
        email: Some("<b>x</b>@example.com".into()),
        kind: IdentityKind::Verified,
        user_id: Some("<i>u-1</i>".into()),
        custom_data: Some(custom.iter().cloned().collect()),
        tickets: vec![ticket(
            "ses_0",
            MARCH_14,
            SessionState::Ended,
            Some(EndReason::AgentEnded),
            Some(HOSTILE),
        )],
    });
    assert_eq!(text(&q(&root, ".visitor-name")), HOSTILE);
    assert_eq!(
        texts(&root, "dd.visitor-field"),
        [HOSTILE, "<b>x</b>@example.com", "<i>u-1</i>"]
    );
    // Keys in order (`<` sorts before letters), each key and value as typed.
    assert_eq!(texts(&root, ".custom dt"), [HOSTILE, "plan"]);
    assert_eq!(
        texts(&root, ".custom dd"),
        ["<script>window.__pwned=2</script>", HOSTILE]
    );
    assert_eq!(texts(&root, ".ticket-agent"), [format!("Agent: {HOSTILE}")]);
    assert!(root.query_selector("img, b, i, script").unwrap().is_none());
    let pwned = js_sys::Reflect::get(&web_sys::window().unwrap(), &"__pwned".into()).unwrap();
    assert!(pwned.is_undefined());
}

#[wasm_bindgen_test]
fn an_anonymous_visitor_shows_the_display_name_a_badge_and_no_fields() {
    let (root, _panel, _) = panel(anonymous("Web User - 03/14 15:09"));
    assert_eq!(text(&q(&root, ".visitor-name")), "Web User - 03/14 15:09");
    assert_eq!(text(&q(&root, ".avatar")), "W");
    let badge = q(&root, ".identity-badge");
    assert_eq!(text(&badge), "Anonymous visitor");
    assert!(badge.class_list().contains("anonymous"));
    assert_eq!(texts(&root, "dd.visitor-field").len(), 0);
    // Only the session's id is listed, and the custom data section is gone.
    assert_eq!(texts(&root, ".about dt"), ["Session"]);
    assert!(!shown(&q(&root, "section.custom")));
}

#[wasm_bindgen_test]
fn a_typed_identity_is_marked_unverified_and_its_user_id_is_not_shown() {
    let (root, _panel, _) = panel(VisitorView {
        display_name: "Jo Visitor".into(),
        name: Some("Jo Visitor".into()),
        email: Some("jo@example.com".into()),
        kind: IdentityKind::Typed,
        user_id: Some("u-42".into()),
        custom_data: None,
        tickets: Vec::new(),
    });
    let badge = q(&root, ".identity-badge");
    assert_eq!(text(&badge), "Unverified \u{2014} typed by the visitor");
    assert!(badge.class_list().contains("typed"));
    assert!(text(&q(&root, ".identity-hint")).contains("Confirm who they are"));
    assert_eq!(texts(&root, ".about dt"), ["Name", "Email", "Session"]);
    assert_eq!(
        texts(&root, "dd.visitor-field"),
        ["Jo Visitor", "jo@example.com"]
    );
}

#[wasm_bindgen_test]
fn a_verified_identity_shows_its_user_id_and_custom_data_under_a_heading() {
    let (root, _panel, _) = panel(VisitorView {
        display_name: "Dana Cole".into(),
        name: Some("Dana Cole".into()),
        email: Some("dana@example.com".into()),
        kind: IdentityKind::Verified,
        user_id: Some("u-42".into()),
        custom_data: Some(
            [("plan", "Pro"), ("account", "A-1009")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        ),
        tickets: Vec::new(),
    });
    let badge = q(&root, ".identity-badge");
    assert_eq!(text(&badge), "Verified");
    assert!(badge.class_list().contains("verified"));
    assert_eq!(
        texts(&root, ".about > dl dt"),
        ["Name", "Email", "User id", "Session"]
    );
    let custom = q(&root, "section.custom");
    assert!(shown(&custom));
    let heading = q(&custom, "h3");
    assert_eq!(text(&heading), "Custom data");
    assert_eq!(
        custom.get_attribute("aria-labelledby"),
        heading.get_attribute("id")
    );
    assert_eq!(texts(&custom, "dl dt"), ["account", "plan"]);
    assert_eq!(texts(&custom, "dl dd"), ["A-1009", "Pro"]);
}

#[wasm_bindgen_test]
fn the_history_lists_each_session_with_its_time_agent_and_outcome() {
    let mut visitor = anonymous("Jo");
    visitor.tickets = vec![
        ticket(
            "ses_1",
            MARCH_14 + 2 * DAY,
            SessionState::Authorizing,
            None,
            Some("Robin"),
        ),
        ticket(
            "ses_b",
            MARCH_14 + DAY,
            SessionState::Ended,
            Some(EndReason::AgentEnded),
            Some("Dana"),
        ),
        ticket(
            "ses_a",
            MARCH_14,
            SessionState::Ended,
            Some(EndReason::PendingTimeout),
            None,
        ),
    ];
    let (root, _panel, _) = panel(visitor);
    let history = q(&root, "section.history");
    let heading = q(&history, "h3");
    assert_eq!(text(&heading), "Earlier sessions");
    assert_eq!(
        history.get_attribute("aria-labelledby"),
        heading.get_attribute("id")
    );
    let items = history.query_selector_all("ul > li").unwrap();
    assert_eq!(items.length(), 3);
    // The session this card is about is marked, not left out.
    assert_eq!(texts(&history, ".ticket-tag"), ["This session"]);
    assert!(q(&history, "li:first-child")
        .class_list()
        .contains("current"));
    assert_eq!(
        texts(&history, ".ticket-agent"),
        ["Agent: Robin", "Agent: Dana", "No agent"]
    );
    assert_eq!(
        texts(&history, ".ticket-outcome"),
        [
            "Waiting for consent",
            "The agent ended the session",
            "The code expired"
        ]
    );
    // The browser writes the time in the agent's locale; the machine
    // readable one is UTC.
    let time = q(&history, "li:last-child time");
    assert_eq!(
        time.get_attribute("datetime").as_deref(),
        Some("2025-03-14T15:09:00.000Z")
    );
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"dateStyle".into(), &"medium".into()).unwrap();
    js_sys::Reflect::set(&options, &"timeStyle".into(), &"short".into()).unwrap();
    let expected = js_sys::Date::new(&(MARCH_14 as f64).into()).to_locale_string(
        &web_sys::window().unwrap().navigator().language().unwrap(),
        &options,
    );
    assert_eq!(text(&time), String::from(expected));
    assert!(text(&time).contains("2025"));
    assert!(!shown(&q(&history, ".history-empty")));
}

#[wasm_bindgen_test]
fn no_other_session_says_no_earlier_sessions() {
    let (root, _panel, _) = panel(anonymous("Jo"));
    let empty = q(&root, ".history-empty");
    assert!(shown(&empty));
    assert_eq!(text(&empty), "No earlier sessions");
    assert!(!shown(&q(&root, "ul.tickets")));

    // Only this session in the history: it is listed, and still nothing earlier.
    let mut visitor = anonymous("Jo");
    visitor.tickets = vec![ticket("ses_1", MARCH_14, SessionState::Pending, None, None)];
    let (root, _panel, _) = panel(visitor);
    assert_eq!(texts(&root, ".ticket-tag"), ["This session"]);
    assert!(shown(&q(&root, ".history-empty")));
}

#[wasm_bindgen_test]
fn this_sessions_ticket_follows_the_live_state() {
    let mut visitor = anonymous("Jo");
    visitor.tickets = vec![
        ticket(
            "ses_1",
            MARCH_14 + DAY,
            SessionState::Authorizing,
            None,
            Some("Dana"),
        ),
        ticket("ses_0", MARCH_14, SessionState::Active, None, Some("Robin")),
    ];
    let (root, panel, _) = panel(visitor);
    panel.update(&status(SessionState::Authorizing, None));
    assert_eq!(
        texts(&root, ".ticket-outcome"),
        ["Waiting for consent", "Active"]
    );
    panel.update(&status(SessionState::Active, None));
    assert_eq!(texts(&root, ".ticket-outcome"), ["Active", "Active"]);
    assert!(q(&root, "li.current .ticket-outcome")
        .class_list()
        .contains("active"));
    panel.update(&status(SessionState::Ended, Some(EndReason::ConsentDenied)));
    // Only this session's ticket: another session's is the broker's to tell.
    assert_eq!(
        texts(&root, ".ticket-outcome"),
        ["The visitor denied the request", "Active"]
    );
    assert!(q(&root, "li.current .ticket-outcome")
        .class_list()
        .contains("ended"));
}

#[wasm_bindgen_test]
fn showing_the_visitor_again_replaces_the_history_and_fields() {
    let mut visitor = anonymous("Jo");
    visitor.tickets = vec![ticket(
        "ses_1",
        MARCH_14,
        SessionState::Active,
        None,
        Some("Dana"),
    )];
    let (root, panel, _) = panel(visitor.clone());
    assert_eq!(texts(&root, ".ticket-outcome"), ["Active"]);

    visitor.tickets[0].state = SessionState::Ended;
    visitor.tickets[0].end_reason = Some(EndReason::DeviceEnded);
    visitor.email = Some("jo@example.com".into());
    visitor.kind = IdentityKind::Typed;
    panel.show_visitor(&visitor);
    assert_eq!(
        texts(&root, ".ticket-outcome"),
        ["The visitor ended the session"]
    );
    assert_eq!(texts(&root, "li.ticket").len(), 1);
    assert_eq!(texts(&root, "dd.visitor-field"), ["jo@example.com"]);
    assert_eq!(texts(&root, ".identity-badge").len(), 1);
    assert_eq!(
        text(&q(&root, ".identity-badge")),
        "Unverified \u{2014} typed by the visitor"
    );
    // The card is still labelled by the visitor's name.
    let heading = q(&root, "h2.visitor-name");
    assert_eq!(
        q(&root, "section.session").get_attribute("aria-labelledby"),
        heading.get_attribute("id")
    );
}

#[wasm_bindgen_test]
fn the_panel_follows_the_session_to_its_end() {
    let (root, panel, actions) = panel(anonymous("Jo"));
    let status_el = q(&root, "[role=status]");
    let end = q(&root, "button.danger");
    let new_code = q(&root, "button.primary");

    let mut waiting = status(SessionState::Authorizing, None);
    waiting.consent_expires_at = Some((js_sys::Date::now() + 90_000.0) as u64);
    panel.update(&waiting);
    assert_eq!(
        text(&status_el),
        "Waiting for the visitor to allow you in\u{2026}"
    );
    let deadline = q(&root, ".deadline");
    assert!(!deadline.has_attribute("hidden"));
    assert!(text(&deadline).starts_with("The request times out in 1:"));
    assert!(!end.has_attribute("hidden"));
    assert!(new_code.has_attribute("hidden"));

    end.unchecked_ref::<HtmlElement>().click();
    assert_eq!(*actions.borrow(), vec![PanelAction::End]);

    panel.update(&status(SessionState::Active, None));
    assert_eq!(
        text(&status_el),
        "Connected \u{2014} the visitor allowed you in"
    );
    assert!(deadline.has_attribute("hidden"));

    panel.update(&status(SessionState::Ended, Some(EndReason::AgentEnded)));
    assert_eq!(text(&status_el), "You ended the session");
    assert!(end.has_attribute("hidden"));
    assert!(!new_code.has_attribute("hidden"));
    assert!(is_focused(&new_code));

    // A late, older state does not bring the session back.
    panel.update(&status(SessionState::Active, None));
    assert_eq!(text(&status_el), "You ended the session");

    new_code.unchecked_ref::<HtmlElement>().click();
    assert_eq!(
        *actions.borrow(),
        vec![PanelAction::End, PanelAction::NewCode]
    );
}

#[wasm_bindgen_test]
fn each_end_reason_reads_as_its_own_sentence() {
    for (reason, sentence) in [
        (EndReason::ConsentDenied, "The visitor denied the request"),
        (
            EndReason::AuthorizingTimeout,
            "The visitor didn't answer in time",
        ),
        (EndReason::DeviceCancelled, "The visitor cancelled"),
        (EndReason::DeviceEnded, "The visitor ended the session"),
        (EndReason::AgentEnded, "You ended the session"),
    ] {
        let (root, panel, _) = panel(anonymous("Jo"));
        panel.update(&status(SessionState::Authorizing, None));
        panel.update(&status(SessionState::Ended, Some(reason)));
        assert_eq!(text(&q(&root, "[role=status]")), sentence);
    }
}

#[wasm_bindgen_test]
fn dropping_the_panel_removes_it() {
    let (root, panel, _) = panel(anonymous("Jo"));
    let mut waiting = status(SessionState::Authorizing, None);
    waiting.consent_expires_at = Some((js_sys::Date::now() + 90_000.0) as u64);
    panel.update(&waiting);
    drop(panel);
    assert_eq!(root.child_element_count(), 0);
}

fn storage() -> web_sys::Storage {
    web_sys::window()
        .unwrap()
        .session_storage()
        .unwrap()
        .unwrap()
}

#[wasm_bindgen_test]
async fn signing_in_against_an_unreachable_broker_says_so_and_stores_nothing() {
    storage().remove_item(TOKEN_KEY).unwrap();
    let root = container();
    let _app = App::start(&root, NOWHERE.into()).unwrap();
    let input: HtmlInputElement = q(&root, "input[type=password]").unchecked_into();
    assert!(is_focused(&input));
    input.set_value("aat_whatever");
    q(&root, "button[type=submit]")
        .unchecked_into::<HtmlElement>()
        .click();
    microtask().await;
    assert!(input.disabled(), "the field is disabled while checking");
    let alert = q(&root, "[role=alert]");
    until("the network error", || !text(&alert).is_empty()).await;
    assert_eq!(text(&alert), "Can't reach the broker. Try again.");
    assert!(!input.disabled());
    assert_eq!(storage().get_item(TOKEN_KEY).unwrap(), None);
}

#[wasm_bindgen_test]
async fn a_stored_token_is_checked_first_and_kept_when_the_broker_is_unreachable() {
    storage().set_item(TOKEN_KEY, "aat_stored").unwrap();
    let root = container();
    let _app = App::start(&root, NOWHERE.into()).unwrap();
    assert_eq!(
        text(&q(&root, "[role=status]")),
        "Checking your sign-in\u{2026}"
    );
    until("the sign-in form", || {
        root.query_selector("input[type=password]")
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(
        text(&q(&root, "[role=alert]")),
        "Can't reach the broker. Try again."
    );
    // Not refused, only not checked: a reload may still resume it.
    assert_eq!(
        storage().get_item(TOKEN_KEY).unwrap().as_deref(),
        Some("aat_stored")
    );
    storage().remove_item(TOKEN_KEY).unwrap();
}

#[wasm_bindgen_test]
fn starting_again_replaces_the_console() {
    storage().remove_item(TOKEN_KEY).unwrap();
    let root = container();
    let first = App::start(&root, NOWHERE.into()).unwrap();
    let second = App::start(&root, NOWHERE.into()).unwrap();
    drop(first);
    assert_eq!(root.query_selector_all(".console").unwrap().length(), 1);
    assert_eq!(root.query_selector_all("form").unwrap().length(), 1);
    drop(second);
}

fn resource_urls(fragment: &str) -> Vec<String> {
    let perf = web_sys::window().unwrap().performance().unwrap();
    perf.get_entries_by_type("resource")
        .iter()
        .filter_map(|e| {
            e.unchecked_into::<web_sys::PerformanceEntry>()
                .name()
                .into()
        })
        .filter(|name: &String| name.contains(fragment))
        .collect()
}

#[wasm_bindgen_test]
async fn a_refused_stream_asks_for_a_new_ticket_and_stops_when_dropped() {
    use crate::stream::{SessionStream, StreamEvent};
    use agent_assist_web::http::Http;
    // The test runner's own server answers 404 to these paths: the source
    // is refused (CLOSED), as it would be with an expired ticket.
    let origin = web_sys::window().unwrap().location().origin().unwrap();
    let events: Rc<RefCell<Vec<StreamEvent>>> = Rc::default();
    let seen = events.clone();
    let stream = SessionStream::open(
        Http::new(origin),
        "aat_token".into(),
        "ses_renew".into(),
        "tkt_first",
        Rc::new(move |e| seen.borrow_mut().push(e)),
    );
    until("the stream to report the refusal", || {
        events.borrow().contains(&StreamEvent::Live(false))
    })
    .await;
    until("a request for a new ticket", || {
        !resource_urls("/v1/sessions/ses_renew/ticket").is_empty()
    })
    .await;
    assert_eq!(
        resource_urls("/v1/sessions/ses_renew/events"),
        vec![format!(
            "{}/v1/sessions/ses_renew/events?ticket=tkt_first",
            web_sys::window().unwrap().location().origin().unwrap()
        )]
    );
    // The ticket request failed too; the next attempt would come after a
    // pause. Dropping the stream cancels it.
    drop(stream);
    let tickets = resource_urls("/v1/sessions/ses_renew/ticket").len();
    TimeoutFuture::new(2500).await;
    assert_eq!(
        resource_urls("/v1/sessions/ses_renew/ticket").len(),
        tickets
    );
    assert!(!events
        .borrow()
        .iter()
        .any(|e| matches!(e, StreamEvent::Status(_))));
}

// The visitor's screen. The test page has no `/mirror.html`, so these
// mirrors draw into an `about:blank` frame, which is ready at once.

use crate::mirror::socket::SocketEvent;
use crate::mirror::{MirrorView, REDACTED};
use agent_assist_protocol::mirror::{Node as Wire, Ns, Op, Page, Redacted, View};

fn element(i: u32, p: u32, name: &str, attrs: &[(&str, &str)]) -> Wire {
    Wire {
        i,
        p,
        e: Some(name.into()),
        a: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Wire::default()
    }
}

fn text_node(i: u32, p: u32, x: &str) -> Wire {
    Wire {
        i,
        p,
        x: Some(x.into()),
        ..Wire::default()
    }
}

/// A shop page: html 1, head 2, title 3, body 4, h1 5, list 6 (items 7,
/// 8, 9 with texts 17, 18, 19), and whatever `extra` adds under the body.
fn shop_page(extra: Vec<Wire>) -> Page {
    let mut nodes = vec![
        element(1, 0, "html", &[("lang", "en")]),
        element(2, 1, "head", &[]),
        element(3, 2, "title", &[]),
        text_node(30, 3, "Lamps"),
        element(4, 1, "body", &[("class", "shop")]),
        element(5, 4, "h1", &[]),
        text_node(50, 5, "Desk lamps"),
        element(6, 4, "ul", &[]),
        element(7, 6, "li", &[]),
        text_node(17, 7, "A"),
        element(8, 6, "li", &[]),
        text_node(18, 8, "B"),
        element(9, 6, "li", &[]),
        text_node(19, 9, "C"),
    ];
    nodes.extend(extra);
    Page {
        url: "https://shop.example/lamps".into(),
        title: "Lamps".into(),
        w: 1280,
        h: 800,
        x: 0,
        y: 0,
        nodes,
        sheets: vec![],
    }
}

/// A mirror in a fresh container, connected (as far as its status knows)
/// and with its frame loaded.
async fn mirror() -> (Element, MirrorView) {
    let root = container();
    let view = MirrorView::new(&doc(), "about:blank");
    mount(&root, view.element());
    until("the frame to load", || view.is_ready()).await;
    view.socket_event(SocketEvent::Open);
    view.receive(View::Presence { online: true });
    (root, view)
}

fn frame_doc(view: &MirrorView) -> Document {
    view.frame_document().expect("the frame's document")
}

fn fq(view: &MirrorView, selector: &str) -> Element {
    frame_doc(view)
        .query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no `{selector}` in the frame"))
}

fn fcount(view: &MirrorView, selector: &str) -> u32 {
    frame_doc(view)
        .query_selector_all(selector)
        .unwrap()
        .length()
}

fn ops(view: &MirrorView, ops: Vec<Op>) {
    view.receive(View::Ops { ops });
}

fn prop(target: &Element, name: &str) -> wasm_bindgen::JsValue {
    js_sys::Reflect::get(target, &name.into()).unwrap()
}

#[wasm_bindgen_test]
async fn the_frame_is_sandboxed_without_scripts_and_covered_by_a_shield() {
    let (root, view) = mirror().await;
    let frame = q(&root, "iframe");
    let sandbox = frame.get_attribute("sandbox").unwrap();
    assert_eq!(sandbox, "allow-same-origin");
    for flag in [
        "allow-scripts",
        "allow-forms",
        "allow-popups",
        "allow-top-navigation",
    ] {
        assert!(!sandbox.contains(flag), "{flag}");
    }
    assert_eq!(
        frame.get_attribute("title").as_deref(),
        Some("Visitor's screen")
    );
    assert_eq!(frame.get_attribute("tabindex").as_deref(), Some("-1"));
    let status = q(&root, ".mirror-status");
    assert_eq!(status.get_attribute("role").as_deref(), Some("status"));
    assert_eq!(text(&status), "Waiting for the visitor's page\u{2026}");
    let cover = q(&root, ".mirror-cover");
    assert!(shown(&cover));
    assert!(q(&root, ".mirror").class_list().contains("covered"));
    // What is at a point of the frame: never the frame itself.
    frame.scroll_into_view();
    let at = |dx: f64, dy: f64| {
        let r = frame.get_bounding_client_rect();
        doc()
            .element_from_point((r.left() + dx) as f32, (r.top() + dy) as f32)
            .unwrap()
    };
    assert_eq!(at(20.0, 20.0), cover);
    // With the page shown, the shield lies over it and takes the clicks.
    view.receive(View::Page(shop_page(vec![])));
    let shield = q(&root, ".mirror-shield");
    assert_eq!(shield.get_attribute("aria-hidden").as_deref(), Some("true"));
    assert_eq!(at(20.0, 20.0), shield);
    assert_eq!(at(300.0, 150.0), shield);
}

#[wasm_bindgen_test]
async fn a_page_is_drawn_into_the_frame_as_the_visitor_sees_it() {
    let (root, view) = mirror().await;
    let mut page = shop_page(vec![
        element(10, 4, "input", &[("type", "text"), ("name", "q")]),
        Wire {
            v: Some("brass lamp".into()),
            ..element(11, 4, "input", &[("type", "search")])
        },
        Wire {
            c: Some(true),
            ..element(12, 4, "input", &[("type", "checkbox")])
        },
        Wire {
            v: Some("Deliver after 6pm".into()),
            ..element(13, 4, "textarea", &[])
        },
        Wire {
            v: Some("b".into()),
            ..element(14, 4, "select", &[])
        },
        // `value` attributes never travel: options go by their text.
        element(15, 14, "option", &[]),
        text_node(25, 15, "a"),
        element(16, 14, "option", &[]),
        text_node(26, 16, "b"),
        Wire {
            ns: Ns::Svg,
            ..element(20, 4, "svg", &[("viewBox", "0 0 10 10")])
        },
        Wire {
            ns: Ns::Svg,
            ..element(21, 20, "linearGradient", &[("id", "g")])
        },
        element(22, 4, "a", &[("href", "/cart"), ("class", "cart")]),
        text_node(23, 22, "<b>Cart</b>"),
    ]);
    page.sheets = vec![".shop h1 { letter-spacing: 3px }".into()];
    view.receive(View::Page(page));

    let d = frame_doc(&view);
    assert_eq!(text(&fq(&view, "h1")), "Desk lamps");
    assert_eq!(
        (0..3)
            .map(|i| text(&fq(&view, &format!("li:nth-child({})", i + 1))))
            .collect::<String>(),
        "ABC"
    );
    assert_eq!(
        d.document_element()
            .unwrap()
            .get_attribute("lang")
            .as_deref(),
        Some("en")
    );
    assert_eq!(fq(&view, "body").class_name(), "shop");
    // Values are set as the visitor typed them, not as attributes.
    let search = fq(&view, "input[type=search]");
    assert_eq!(
        prop(&search, "value").as_string().as_deref(),
        Some("brass lamp")
    );
    assert!(!search.has_attribute("value"));
    assert_eq!(prop(&fq(&view, "input[type=checkbox]"), "checked"), true);
    assert_eq!(
        prop(&fq(&view, "textarea"), "value").as_string().as_deref(),
        Some("Deliver after 6pm")
    );
    assert_eq!(
        prop(&fq(&view, "select"), "value").as_string().as_deref(),
        Some("b")
    );
    // SVG in its namespace, with its names' case.
    let gradient = fq(&view, "svg linearGradient");
    assert_eq!(
        gradient.namespace_uri().as_deref(),
        Some("http://www.w3.org/2000/svg")
    );
    // Text stays text.
    assert_eq!(text(&fq(&view, "a.cart")), "<b>Cart</b>");
    assert_eq!(fcount(&view, "b"), 0);
    // Relative URLs resolve against the visitor's page.
    let base = fq(&view, "head > base:first-child");
    assert_eq!(
        base.get_attribute("href").as_deref(),
        Some("https://shop.example/lamps")
    );
    assert_eq!(
        prop(&fq(&view, "a.cart"), "href").as_string().as_deref(),
        Some("https://shop.example/cart")
    );
    // The page's constructed sheet applies.
    let window = d.default_view().unwrap();
    let style = window
        .get_computed_style(&fq(&view, "h1"))
        .unwrap()
        .unwrap();
    assert_eq!(style.get_property_value("letter-spacing").unwrap(), "3px");
    // Nothing in the copy takes focus.
    assert!(d.document_element().unwrap().has_attribute("inert"));

    assert_eq!(text(&q(&root, ".mirror-page-title")), "Lamps");
    assert_eq!(text(&q(&root, ".mirror-url")), "https://shop.example/lamps");
    assert!(root.query_selector(".mirror-page a").unwrap().is_none());
    assert_eq!(text(&q(&root, ".mirror-status")), "Live");
    assert!(!shown(&q(&root, ".mirror-cover")));
    assert!(!q(&root, ".mirror").class_list().contains("covered"));
}

#[wasm_bindgen_test]
async fn ops_insert_move_and_remove_nodes_and_change_attributes_text_and_values() {
    let (_root, view) = mirror().await;
    view.receive(View::Page(shop_page(vec![element(
        10,
        4,
        "input",
        &[("type", "text")],
    )])));
    let items = || {
        let list = frame_doc(&view).query_selector_all("li").unwrap();
        (0..list.length())
            .map(|i| list.item(i).unwrap().text_content().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(items(), ["A", "B", "C"]);
    let c_node = fq(&view, "li:nth-child(3)");
    ops(
        &view,
        vec![Op::Kids {
            i: 6,
            c: vec![9, 7, 40],
            n: vec![element(40, 6, "li", &[]), text_node(41, 40, "D")],
        }],
    );
    assert_eq!(items(), ["C", "A", "D"]);
    // Moved, not copied.
    assert_eq!(fq(&view, "li:first-child"), c_node);
    // A node moves to another parent: taken from one list, put in another.
    ops(
        &view,
        vec![
            Op::Kids {
                i: 6,
                c: vec![9, 40],
                n: vec![],
            },
            Op::Kids {
                i: 5,
                c: vec![50, 7],
                n: vec![],
            },
        ],
    );
    assert_eq!(items(), ["A", "C", "D"]);
    assert_eq!(text(&fq(&view, "h1")), "Desk lampsA");
    ops(
        &view,
        vec![
            Op::Attr {
                i: 6,
                k: "class".into(),
                v: Some("grid".into()),
            },
            Op::Attr {
                i: 4,
                k: "class".into(),
                v: None,
            },
            Op::Text {
                i: 50,
                x: "Floor lamps".into(),
            },
            Op::Value {
                i: 10,
                v: Some("hello".into()),
                c: None,
            },
            // Unknown ids are ignored.
            Op::Text {
                i: 999,
                x: "nowhere".into(),
            },
            Op::Kids {
                i: 998,
                c: vec![7],
                n: vec![],
            },
        ],
    );
    assert_eq!(fq(&view, "ul").class_name(), "grid");
    assert!(!fq(&view, "body").has_attribute("class"));
    assert_eq!(text(&fq(&view, "h1")), "Floor lampsA");
    assert_eq!(
        prop(&fq(&view, "input"), "value").as_string().as_deref(),
        Some("hello")
    );
    // The mirror's own nodes stay when the head's children are set.
    ops(
        &view,
        vec![Op::Kids {
            i: 2,
            c: vec![],
            n: vec![],
        }],
    );
    assert_eq!(fcount(&view, "title"), 0);
    assert_eq!(fcount(&view, "head > base"), 1);
    assert_eq!(fcount(&view, "head > style"), 1);
}

#[wasm_bindgen_test]
async fn a_redacted_element_is_a_box_of_its_size_with_nothing_of_it_inside() {
    let (_root, view) = mirror().await;
    view.receive(View::Page(shop_page(vec![
        Wire {
            r: Some(Redacted {
                w: 240,
                h: 32,
                b: false,
            }),
            ..element(10, 4, "input", &[])
        },
        Wire {
            r: Some(Redacted {
                w: 300,
                h: 120,
                b: true,
            }),
            ..element(11, 4, "section", &[])
        },
        // A child of a redacted element never shows, even if sent.
        text_node(12, 11, "card 4242 4242 4242 4242"),
    ])));
    assert_eq!(fcount(&view, "input, section"), 0);
    let boxes = frame_doc(&view)
        .query_selector_all(&format!("[{REDACTED}]"))
        .unwrap();
    assert_eq!(boxes.length(), 2);
    let window = frame_doc(&view).default_view().unwrap();
    for (i, (w, h, display)) in [(240, 32, "inline-block"), (300, 120, "block")]
        .into_iter()
        .enumerate()
    {
        let b: Element = boxes.item(i as u32).unwrap().unchecked_into();
        assert_eq!(b.local_name(), "div");
        assert_eq!(text(&b), "");
        assert_eq!(b.child_nodes().length(), 0);
        let r = b.get_bounding_client_rect();
        assert_eq!((r.width(), r.height()), (f64::from(w), f64::from(h)));
        let style = window.get_computed_style(&b).unwrap().unwrap();
        assert_eq!(style.get_property_value("display").unwrap(), display);
        assert_eq!(style.get_property_value("overflow").unwrap(), "hidden");
    }
    // Nothing reaches a redacted box afterwards either.
    ops(
        &view,
        vec![
            Op::Attr {
                i: 11,
                k: "title".into(),
                v: Some("secret".into()),
            },
            Op::Kids {
                i: 11,
                c: vec![13],
                n: vec![text_node(13, 11, "secret")],
            },
            Op::Value {
                i: 10,
                v: Some("secret".into()),
                c: None,
            },
        ],
    );
    let body = text(&fq(&view, "body"));
    assert!(!body.contains("4242") && !body.contains("secret"), "{body}");
    assert!(!fq(&view, &format!("div[{REDACTED}]:last-of-type")).has_attribute("title"));
    assert_eq!(
        prop(&fq(&view, &format!("[{REDACTED}]")), "value"),
        wasm_bindgen::JsValue::UNDEFINED
    );
}

#[wasm_bindgen_test]
async fn scripts_handlers_and_javascript_urls_in_a_frame_are_never_created() {
    let (_root, view) = mirror().await;
    let pwn = "parent.__mirror_pwned=1";
    view.receive(View::Page(shop_page(vec![
        element(10, 4, "script", &[]),
        text_node(11, 10, pwn),
        element(12, 4, "SCRIPT", &[("src", "https://evil.example/x.js")]),
        element(13, 4, "iframe", &[("src", "https://evil.example/")]),
        element(14, 4, "object", &[("data", "https://evil.example/x.swf")]),
        element(15, 4, "embed", &[]),
        element(
            16,
            2,
            "meta",
            &[
                ("http-equiv", "refresh"),
                ("content", "0;url=https://evil.example/"),
            ],
        ),
        element(17, 2, "base", &[("href", "https://evil.example/")]),
        element(
            18,
            2,
            "link",
            &[("rel", "preload"), ("href", "https://evil.example/a")],
        ),
        element(
            20,
            4,
            "a",
            &[
                ("href", "javascript:parent.__mirror_pwned=2"),
                ("onclick", pwn),
                ("id", "x"),
            ],
        ),
        element(21, 4, "img", &[("src", "x"), ("onerror", pwn)]),
        Wire {
            ns: Ns::Svg,
            ..element(22, 4, "svg", &[("onload", pwn)])
        },
        Wire {
            ns: Ns::Svg,
            ..element(23, 22, "script", &[])
        },
        element(
            24,
            4,
            "div",
            &[("style", "background:url(javascript:x)"), ("id", "styled")],
        ),
    ])));
    ops(
        &view,
        vec![
            Op::Kids {
                i: 4,
                c: vec![5, 6, 20, 30],
                n: vec![element(30, 4, "script", &[]), text_node(31, 30, pwn)],
            },
            Op::Attr {
                i: 5,
                k: "onclick".into(),
                v: Some(pwn.into()),
            },
            Op::Attr {
                i: 20,
                k: "href".into(),
                v: Some(" java\tscript:parent.__mirror_pwned=3".into()),
            },
            Op::Attr {
                i: 6,
                k: "srcdoc".into(),
                v: Some("<script>x</script>".into()),
            },
        ],
    );
    assert_eq!(fcount(&view, "script"), 0);
    assert_eq!(fcount(&view, "iframe, object, embed, meta, link"), 0);
    // Only the mirror's own base, pointing at the visitor's page.
    assert_eq!(fcount(&view, "base"), 1);
    assert_eq!(
        fq(&view, "base").get_attribute("href").as_deref(),
        Some("https://shop.example/lamps")
    );
    assert_eq!(fcount(&view, "[onclick], [onerror], [onload], [srcdoc]"), 0);
    let link = fq(&view, "a#x");
    assert!(!link.has_attribute("href"));
    assert!(!fq(&view, "body").inner_html().contains("javascript"));
    TimeoutFuture::new(50).await;
    let pwned =
        js_sys::Reflect::get(&web_sys::window().unwrap(), &"__mirror_pwned".into()).unwrap();
    assert!(pwned.is_undefined());
}

#[wasm_bindgen_test]
async fn a_page_that_is_not_shared_blanks_the_frame_and_says_so() {
    let (root, view) = mirror().await;
    view.receive(View::Page(shop_page(vec![])));
    assert_eq!(text(&fq(&view, "h1")), "Desk lamps");
    view.receive(View::Hidden);
    assert_eq!(fcount(&view, "h1, li"), 0);
    assert_eq!(text(&fq(&view, "body")), "");
    let cover = q(&root, ".mirror-cover");
    assert!(shown(&cover));
    assert!(q(&root, ".mirror").class_list().contains("covered"));
    assert_eq!(
        text(&q(&root, ".mirror-status")),
        "The visitor is on a page that is not shared"
    );
    // Said once, so neither the eye nor a screen reader meets it twice.
    let said = texts(&root, ".mirror *")
        .into_iter()
        .filter(|t| t == "The visitor is on a page that is not shared")
        .count();
    assert_eq!(said, 1);
    assert_eq!(text(&q(&root, ".mirror-page-title")), "");
    assert_eq!(text(&q(&root, ".mirror-url")), "");
    // Changes to the page the visitor left do nothing.
    ops(
        &view,
        vec![Op::Kids {
            i: 4,
            c: vec![60],
            n: vec![text_node(60, 4, "stale")],
        }],
    );
    assert_eq!(text(&fq(&view, "body")), "");
    view.receive(View::Page(shop_page(vec![])));
    assert!(!shown(&cover));
    assert_eq!(text(&q(&root, ".mirror-status")), "Live");
}

#[wasm_bindgen_test]
async fn the_status_follows_the_visitor_and_the_connection() {
    let (root, view) = mirror().await;
    let status = q(&root, ".mirror-status");
    view.receive(View::Page(shop_page(vec![])));
    assert_eq!(text(&status), "Live");
    view.receive(View::Presence { online: false });
    assert_eq!(text(&status), "The visitor is changing page\u{2026}");
    // The last page stays, dimmed, until the next one comes.
    assert!(q(&root, ".mirror-stage").class_list().contains("stale"));
    assert_eq!(text(&fq(&view, "h1")), "Desk lamps");
    view.receive(View::Presence { online: true });
    view.socket_event(SocketEvent::Lost);
    assert_eq!(text(&status), "Reconnecting\u{2026}");
    view.socket_event(SocketEvent::Open);
    assert_eq!(text(&status), "Live");
    view.socket_event(SocketEvent::Stopped(
        agent_assist_protocol::mirror::CLOSE_UNAUTHORIZED,
    ));
    assert_eq!(text(&status), say::MIRROR_REFUSED);
    assert_eq!(fcount(&view, "h1"), 0);
}

#[wasm_bindgen_test]
async fn the_viewport_is_scaled_to_fit_and_the_pointer_and_clicks_follow_it() {
    let root = container();
    // Narrow enough that the width, not the window's height, sets the scale.
    set_width(&root, 320);
    let view = MirrorView::new(&doc(), "about:blank");
    mount(&root, view.element());
    until("the frame to load", || view.is_ready()).await;
    view.socket_event(SocketEvent::Open);
    view.receive(View::Page(shop_page(vec![])));
    let screen: HtmlElement = q(&root, ".mirror-screen").unchecked_into();
    let frame: HtmlElement = q(&root, "iframe").unchecked_into();
    for _ in 0..100 {
        if screen.offset_width() == 320 {
            break;
        }
        TimeoutFuture::new(10).await;
    }
    assert_eq!((screen.offset_width(), screen.offset_height()), (320, 200));
    assert_eq!(frame.style().get_property_value("width").unwrap(), "1280px");
    assert_eq!(
        frame.style().get_property_value("transform").unwrap(),
        "scale(0.25)"
    );

    let pointer: HtmlElement = q(&root, ".mirror-pointer").unchecked_into();
    assert!(pointer.has_attribute("hidden"));
    assert_eq!(
        pointer.get_attribute("aria-hidden").as_deref(),
        Some("true")
    );
    ops(&view, vec![Op::Pointer { x: 100, y: 200 }]);
    assert!(!pointer.has_attribute("hidden"));
    assert_eq!(
        pointer.style().get_property_value("transform").unwrap(),
        "translate(25px, 50px)"
    );
    ops(&view, vec![Op::Click { x: 400, y: 300 }]);
    let ripple = q(&root, ".mirror-click");
    assert!(ripple.class_list().contains("on"));
    until("the ripple to end", || !ripple.class_list().contains("on")).await;

    // A phone: narrower than tall, so the height limits the scale.
    ops(&view, vec![Op::Viewport { w: 390, h: 844 }]);
    let (w, h) = (screen.offset_width(), screen.offset_height());
    assert!(w <= 390 && h <= 844, "{w}×{h}");
    assert!(
        (f64::from(w) / f64::from(h) - 390.0 / 844.0).abs() < 0.01,
        "{w}×{h}"
    );
    // The pointer moved with the scale: the window's height sets it.
    let window_height = web_sys::window()
        .unwrap()
        .inner_height()
        .unwrap()
        .as_f64()
        .unwrap();
    let s = (window_height * 0.7).max(240.0) / 844.0;
    assert!(s < 320.0 / 390.0);
    let expected = format!(
        "translate({}px, {}px)",
        js_round(100.0 * s),
        js_round(200.0 * s)
    );
    assert_eq!(
        pointer.style().get_property_value("transform").unwrap(),
        expected
    );

    // The card narrows: the screen follows.
    set_width(&root, 100);
    until("the screen to narrow", || screen.offset_width() <= 100).await;
}

fn set_width(e: &Element, px: u32) {
    e.unchecked_ref::<HtmlElement>()
        .style()
        .set_property("width", &format!("{px}px"))
        .unwrap();
}

/// `n` as the console writes it in CSS (three decimals at most).
fn js_round(n: f64) -> String {
    let n = (n * 1000.0).round() / 1000.0;
    js_sys::Number::from(n)
        .to_string_with_radix(10)
        .unwrap()
        .into()
}

#[wasm_bindgen_test]
async fn frames_received_before_the_frame_loads_are_drawn_once_it_has() {
    let root = container();
    let view = MirrorView::new(&doc(), "about:blank");
    view.socket_event(SocketEvent::Open);
    view.receive(View::Page(shop_page(vec![])));
    ops(
        &view,
        vec![Op::Text {
            i: 50,
            x: "Early".into(),
        }],
    );
    assert!(!view.is_ready());
    mount(&root, view.element());
    until("the frame to load", || view.is_ready()).await;
    assert_eq!(text(&fq(&view, "h1")), "Early");
    assert_eq!(text(&q(&root, ".mirror-status")), "Live");
}

#[wasm_bindgen_test]
fn frames_are_read_from_json_as_the_protocols_own_derive_reads_them() {
    use crate::mirror::frame::read_view;
    use agent_assist_web::js_de::from_js;
    let parse = |json: &str| js_sys::JSON::parse(json).unwrap();
    let page = r#"{"t":"page","url":"https://shop.example/","title":"Shop","w":800,"h":600,"x":0,"y":-10,"nodes":[{"i":1,"p":0,"e":"html"},{"i":2,"p":1,"e":"svg","ns":"svg","a":[["viewBox","0 0 1 1"]]},{"i":3,"p":1,"e":"input","r":{"w":100,"h":20,"b":true}},{"i":4,"p":1,"e":"input","v":"x","c":false}],"sheets":["a{}"]}"#;
    let Some(View::Page(read)) = read_view(parse(page)) else {
        panic!("not a page");
    };
    assert_eq!((read.w, read.h, read.y), (800, 600, -10));
    assert_eq!(read.nodes[1].ns, Ns::Svg);
    assert_eq!(
        read.nodes[1].a,
        [("viewBox".to_owned(), "0 0 1 1".to_owned())]
    );
    assert_eq!(
        read.nodes[2].r,
        Some(Redacted {
            w: 100,
            h: 20,
            b: true
        })
    );
    assert_eq!(read.nodes[3].c, Some(false));
    assert_eq!(read.sheets, ["a{}"]);
    // Every frame reads as serde's derive of the protocol reads it, and
    // what the derive refuses is refused.
    for json in [
        page,
        r#"{"t":"ops","ops":[{"o":"kids","i":1,"c":[2,4],"n":[{"i":4,"p":1,"x":"new"}]},{"o":"attr","i":1,"k":"class","v":null},{"o":"attr","i":1,"k":"id","v":"a"},{"o":"attr","i":1,"k":"id"},{"o":"text","i":2,"x":"t"},{"o":"value","i":5,"v":"abc"},{"o":"value","i":5,"c":true},{"o":"scroll","i":0,"x":0,"y":120},{"o":"viewport","w":390,"h":844},{"o":"pointer","x":-1,"y":3},{"o":"click","x":5,"y":6}]}"#,
        r#"{"t":"ops","ops":[]}"#,
        r#"{"t":"hidden"}"#,
        r#"{"t":"presence","online":false}"#,
        r#"{"t":"presence","online":true}"#,
        // Refused: a node field the protocol does not have, a wrong type,
        // an unknown op or frame, a negative id, a missing field.
        r#"{"t":"page","url":"u","title":"","w":1,"h":1,"x":0,"y":0,"nodes":[{"i":1,"p":0,"e":"p","onclick":"x"}]}"#,
        r#"{"t":"ops","ops":[{"o":"attr","i":1,"k":"id","v":5}]}"#,
        r#"{"t":"ops","ops":[{"o":"eval","i":1}]}"#,
        r#"{"t":"ops","ops":[{"o":"text","i":1,"x":"a","extra":1}]}"#,
        r#"{"t":"presence","online":true,"extra":1}"#,
        r#"{"t":"ops","ops":[{"o":"text","i":-1,"x":"t"}]}"#,
        r#"{"t":"ops","ops":[{"o":"scroll","i":0,"x":1.5,"y":0}]}"#,
        r#"{"t":"ops","ops":[{"o":"kids","i":1,"c":[2]}]}"#,
        r#"{"t":"presence"}"#,
        r#"{"t":"welcome","pages":[]}"#,
        r#"{"ops":[]}"#,
        r#"[1,2]"#,
        r#""page""#,
    ] {
        let derived = from_js::<View>(parse(json)).ok();
        assert_eq!(read_view(parse(json)), derived, "{json}");
    }
}

#[wasm_bindgen_test]
async fn a_dropped_connection_reconnects_and_dropping_the_view_stops_it() {
    // The test runner's server is no WebSocket server: each attempt fails.
    let origin = web_sys::window().unwrap().location().origin().unwrap();
    let root = container();
    let view = MirrorView::new(&doc(), "about:blank");
    mount(&root, view.element());
    view.connect(&origin, "aat_token".into(), "ses_ws");
    let status = q(&root, ".mirror-status");
    assert_eq!(text(&status), "Waiting for the visitor's page\u{2026}");
    until("the drop to show", || {
        text(&status) == "Reconnecting\u{2026}"
    })
    .await;
    drop(view);
    assert_eq!(root.child_element_count(), 0);
    // Had the retry survived, it would now touch dropped state.
    TimeoutFuture::new(1200).await;
}

/// Replaces `window.fetch` with answers by path (404 `unknown_session`
/// for any other path) until dropped.
struct FakeBroker {
    real: wasm_bindgen::JsValue,
}

impl FakeBroker {
    fn new(routes: &str) -> FakeBroker {
        let install = js_sys::Function::new_with_args(
            "routes",
            "const real = window.fetch;
             window.fetch = async (req) => {
               const path = new URL(req.url ?? req).pathname;
               const hit = routes[req.method + ' ' + path];
               const json = (body, status) => new Response(JSON.stringify(body),
                 { status, headers: { 'content-type': 'application/json' } });
               return hit === undefined
                 ? json({ error: 'unknown_session', message: 'no such session' }, 404)
                 : json(hit, 200);
             };
             return real;",
        );
        let routes = js_sys::JSON::parse(routes).unwrap();
        let real = install
            .call1(&wasm_bindgen::JsValue::NULL, &routes)
            .unwrap();
        FakeBroker { real }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        js_sys::Reflect::set(&web_sys::window().unwrap(), &"fetch".into(), &self.real).unwrap();
    }
}

fn broker_routes(state: &str) -> String {
    format!(
        r#"{{
          "GET /v1/agent/me": {{"agent": {{"id": "a1", "name": "Dana"}}, "site": {{"key": "s1", "name": "Lumen"}}}},
          "GET /v1/sessions/ses_back": {{"session_id": "ses_back", "state": "{state}", "expires_at": 0}},
          "GET /v1/sessions/ses_back/visitor": {{"display_name": "Jo Back", "kind": "anonymous", "tickets": []}},
          "POST /v1/sessions/ses_back/ticket": {{"ticket": "tkt_1", "expires_in": 300}}
        }}"#
    )
}

#[wasm_bindgen_test]
async fn a_reload_during_an_active_session_goes_back_to_it_with_the_visitors_screen() {
    use crate::app::SESSION_KEY;
    let _broker = FakeBroker::new(&broker_routes("active"));
    storage().set_item(TOKEN_KEY, "aat_back").unwrap();
    storage().set_item(SESSION_KEY, "ses_back").unwrap();
    let root = container();
    let app = App::start(&root, NOWHERE.into()).unwrap();
    until("the session card", || {
        root.query_selector("section.session").unwrap().is_some()
    })
    .await;
    assert_eq!(text(&q(&root, ".visitor-name")), "Jo Back");
    assert_eq!(
        text(&q(&root, ".state-text")),
        "Connected \u{2014} the visitor allowed you in"
    );
    // The visitor's screen is back too, in its frame.
    let mirror = q(&root, "section.mirror");
    assert!(shown(&mirror));
    assert!(q(&root, "section.session")
        .class_list()
        .contains("mirroring"));
    assert_eq!(
        q(&mirror, "iframe").get_attribute("src").as_deref(),
        Some("/mirror.html")
    );
    assert_eq!(
        storage().get_item(SESSION_KEY).unwrap().as_deref(),
        Some("ses_back")
    );
    // Signing out forgets the session with the credential.
    q(&root, ".account button")
        .unchecked_into::<HtmlElement>()
        .click();
    until("the sign-in form", || {
        root.query_selector("input[type=password]")
            .unwrap()
            .is_some()
    })
    .await;
    assert!(root.query_selector("section.mirror").unwrap().is_none());
    assert_eq!(storage().get_item(SESSION_KEY).unwrap(), None);
    assert_eq!(storage().get_item(TOKEN_KEY).unwrap(), None);
    drop(app);
}

#[wasm_bindgen_test]
async fn a_reload_after_the_session_ended_offers_a_new_code_and_forgets_it() {
    use crate::app::SESSION_KEY;
    let _broker = FakeBroker::new(&broker_routes("ended"));
    storage().set_item(TOKEN_KEY, "aat_back").unwrap();
    storage().set_item(SESSION_KEY, "ses_back").unwrap();
    let root = container();
    let app = App::start(&root, NOWHERE.into()).unwrap();
    until("the code boxes", || !boxes(&root).is_empty()).await;
    assert_eq!(storage().get_item(SESSION_KEY).unwrap(), None);
    // A session the broker does not know (another agent's, or purged).
    storage().set_item(SESSION_KEY, "ses_gone").unwrap();
    drop(app);
    let root = container();
    let app = App::start(&root, NOWHERE.into()).unwrap();
    until("the code boxes", || !boxes(&root).is_empty()).await;
    assert_eq!(storage().get_item(SESSION_KEY).unwrap(), None);
    storage().remove_item(TOKEN_KEY).unwrap();
    drop(app);
}
