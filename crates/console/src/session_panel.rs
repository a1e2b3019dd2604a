//! The session card: who the visitor is and their earlier sessions (a
//! [`VisitorCard`]), the session's live state in a status region, the time
//! left for the visitor to answer, End session while the session is live
//! and New code once it is over; while the session is `active`, the
//! visitor's screen (a [`MirrorView`], which the app opens and closes).

use crate::mirror::MirrorView;
use crate::text::{self, say};
use crate::visitor_card::VisitorCard;
use agent_assist_protocol::{SessionState, SessionStatus, VisitorView};
use agent_assist_web::dom::{self, append, attr, button, el, text_el, Listener};
use gloo_timers::callback::Interval;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlButtonElement};

/// What the agent asked the panel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelAction {
    End,
    NewCode,
}

/// A consent deadline further away than this is a wrong clock on the
/// agent's machine rather than a real deadline; no countdown is shown then.
const MAX_SENSIBLE_WAIT_MS: f64 = 3_600_000.0;

pub struct SessionPanel {
    root: Element,
    visitor: VisitorCard,
    state_box: Element,
    badge_text: Element,
    status: Element,
    deadline: Element,
    live_note: Element,
    alert: Element,
    end_button: HtmlButtonElement,
    new_button: HtmlButtonElement,
    /// Where the visitor's screen goes: after the actions, before the
    /// history (beside everything else on a wide screen).
    mirror_slot: Element,
    mirror: RefCell<Option<MirrorView>>,
    state: Cell<Option<SessionState>>,
    /// Counts down the consent deadline while the session is authorizing.
    ticker: RefCell<Option<Interval>>,
    _listeners: Vec<Listener>,
}

impl SessionPanel {
    pub fn new(
        doc: &Document,
        session_id: &str,
        visitor: &VisitorView,
        on_action: Rc<dyn Fn(PanelAction)>,
    ) -> SessionPanel {
        let root = el(doc, "section", "card session");

        let visitor = VisitorCard::new(doc, session_id, visitor);
        if let Some(id) = visitor.heading().get_attribute("id") {
            attr(&root, "aria-labelledby", &id);
        }
        append(&root, visitor.about());

        let state_box = el(doc, "div", "state");
        let badge = el(doc, "span", "badge");
        attr(&badge, "aria-hidden", "true");
        append(&badge, &el(doc, "span", "dot"));
        let badge_text = el(doc, "span", "");
        append(&badge, &badge_text);
        append(&state_box, &badge);
        let status = el(doc, "p", "state-text");
        attr(&status, "role", "status");
        append(&state_box, &status);
        // Not live: it ticks every second.
        let deadline = el(doc, "p", "deadline");
        attr(&deadline, "hidden", "");
        append(&state_box, &deadline);
        let live_note = text_el(doc, "p", "live-note", say::RECONNECTING);
        attr(&live_note, "hidden", "");
        append(&state_box, &live_note);
        append(&root, &state_box);

        let alert = el(doc, "div", "alert");
        attr(&alert, "role", "alert");
        append(&root, &alert);

        let actions = el(doc, "div", "actions");
        let end_button: HtmlButtonElement =
            button(doc, "button danger", say::END_SESSION).unchecked_into();
        append(&actions, &end_button);
        let new_button: HtmlButtonElement =
            button(doc, "button primary", say::NEW_CODE).unchecked_into();
        attr(&new_button, "hidden", "");
        append(&actions, &new_button);
        append(&root, &actions);
        let mirror_slot = el(doc, "div", "mirror-slot");
        attr(&mirror_slot, "hidden", "");
        append(&root, &mirror_slot);
        append(&root, visitor.history());

        let listeners = vec![
            {
                let on_action = on_action.clone();
                Listener::new(&end_button, "click", move |_| on_action(PanelAction::End))
            },
            Listener::new(&new_button, "click", move |_| {
                on_action(PanelAction::NewCode)
            }),
        ];

        SessionPanel {
            root,
            visitor,
            state_box,
            badge_text,
            status,
            deadline,
            live_note,
            alert,
            end_button,
            new_button,
            mirror_slot,
            mirror: RefCell::new(None),
            state: Cell::new(None),
            ticker: RefCell::new(None),
            _listeners: listeners,
        }
    }

    pub fn element(&self) -> &Element {
        &self.root
    }

    pub fn focus(&self) {
        dom::focus(self.visitor.heading());
    }

    /// Shows the visitor again, as the broker now knows them.
    pub fn show_visitor(&self, visitor: &VisitorView) {
        self.visitor.show(visitor);
    }

    /// Shows `status`. A session only moves forward, so an update that
    /// would move it back (a late answer after a newer event) is ignored.
    /// Returns whether this update ended the session, which happens once.
    pub fn update(&self, status: &SessionStatus) -> bool {
        let old = self.state.get();
        if old.is_some_and(|old| old.rank() > status.state.rank()) {
            return false;
        }
        let entered_end = status.state == SessionState::Ended && old != Some(SessionState::Ended);
        self.state.set(Some(status.state));
        self.visitor.follow(status.state, status.end_reason);

        let class = match status.state {
            SessionState::Pending | SessionState::Authorizing => "state waiting",
            SessionState::Active => "state active",
            SessionState::Ended => "state ended",
        };
        self.state_box.set_class_name(class);
        self.badge_text
            .set_text_content(Some(text::state_badge(status.state)));
        let sentence = text::state_sentence(status.state, status.end_reason);
        // Rewriting the same text would make some screen readers repeat it.
        if self.status.text_content().as_deref() != Some(sentence) {
            self.status.set_text_content(Some(sentence));
        }

        match (status.state, status.consent_expires_at) {
            (SessionState::Authorizing, Some(at)) => self.count_down_to(at as f64),
            _ => self.stop_countdown(),
        }

        let live = matches!(
            status.state,
            SessionState::Pending | SessionState::Authorizing | SessionState::Active
        );
        set_hidden(&self.end_button, !live);
        set_hidden(&self.new_button, live);
        if entered_end {
            self.set_live(true);
            self.alert.set_text_content(None);
            // The End button (perhaps focused) is gone; New code is next.
            dom::focus(&self.new_button);
        }
        entered_end
    }

    /// Shows the visitor's screen, or takes it away (`None`), dropping the
    /// one shown before: its socket, listeners and timers go with it.
    pub fn set_mirror(&self, mirror: Option<MirrorView>) {
        let old = self.mirror.borrow_mut().take();
        drop(old);
        let shown = mirror.is_some();
        if let Some(mirror) = &mirror {
            append(&self.mirror_slot, mirror.element());
        }
        *self.mirror.borrow_mut() = mirror;
        set_hidden(&self.mirror_slot, !shown);
        let _ = self.root.class_list().toggle_with_force("mirroring", shown);
    }

    /// The session's state as last shown.
    pub fn state(&self) -> Option<SessionState> {
        self.state.get()
    }

    pub fn has_mirror(&self) -> bool {
        self.mirror.borrow().is_some()
    }

    /// While the End request is on its way.
    pub fn set_ending(&self, ending: bool) {
        self.end_button.set_disabled(ending);
        self.end_button.set_text_content(Some(if ending {
            say::ENDING
        } else {
            say::END_SESSION
        }));
        if ending {
            self.alert.set_text_content(None);
        }
    }

    pub fn show_error(&self, message: &str) {
        self.set_ending(false);
        self.alert.set_text_content(Some(message));
    }

    /// Whether live updates are flowing; when not, a note says so.
    pub fn set_live(&self, live: bool) {
        let ended = self.state.get() == Some(SessionState::Ended);
        set_hidden(&self.live_note, live || ended);
    }

    fn count_down_to(&self, at_ms: f64) {
        let deadline = self.deadline.clone();
        let show = move || {
            let left = at_ms - js_sys::Date::now();
            if left > MAX_SENSIBLE_WAIT_MS {
                set_hidden(&deadline, true);
                return;
            }
            let secs = (left / 1000.0).ceil().max(0.0) as u32;
            deadline.set_text_content(Some(&text::consent_time_left(secs)));
            set_hidden(&deadline, false);
        };
        show();
        *self.ticker.borrow_mut() = Some(Interval::new(1000, show));
    }

    fn stop_countdown(&self) {
        self.ticker.borrow_mut().take();
        set_hidden(&self.deadline, true);
    }
}

pub(crate) fn set_hidden(e: &Element, hidden: bool) {
    if hidden {
        attr(e, "hidden", "");
    } else {
        let _ = e.remove_attribute("hidden");
    }
}

impl Drop for SessionPanel {
    fn drop(&mut self) {
        self.ticker.borrow_mut().take();
        self.mirror.borrow_mut().take();
        self.root.remove();
    }
}
