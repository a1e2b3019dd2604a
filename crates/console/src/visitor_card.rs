//! The visitor part of the session card: who the visitor is (display name,
//! whether the site vouched for them, their fields and the site's custom
//! data) and their sessions at this site, newest first.
//!
//! Everything here came from the visitor or the site's page: a name, an
//! email, a custom-data key or value may hold markup, so all of it is set
//! as text and never parsed as HTML. Dates are written by the browser's
//! `Intl.DateTimeFormat`, in the agent's own locale and time zone.

use crate::session_panel::set_hidden;
use crate::text::{self, say};
use crate::unique_id;
use agent_assist_protocol::{EndReason, IdentityKind, SessionState, Ticket, VisitorView};
use agent_assist_web::dom::{append, attr, el, text_el};
use js_sys::Intl;
use std::cell::RefCell;
use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

pub struct VisitorCard {
    doc: Document,
    /// The session the card belongs to: its ticket is marked, not hidden,
    /// so its outcome shows once the session is over.
    session_id: String,
    /// The top of the card: avatar, name, identity, fields, custom data.
    about: Element,
    avatar: Element,
    heading: Element,
    identity: Element,
    hint: Element,
    facts: Element,
    custom: Element,
    custom_list: Element,
    /// "Earlier sessions", for the bottom of the card.
    history: Element,
    tickets: Element,
    empty: Element,
    /// The outcome shown for this session's ticket, kept in step with the
    /// live state (the history itself is read when the card is made).
    current_outcome: RefCell<Option<Element>>,
}

impl VisitorCard {
    pub fn new(doc: &Document, session_id: &str, visitor: &VisitorView) -> VisitorCard {
        let about = el(doc, "div", "about");
        let who = el(doc, "div", "visitor");
        let avatar = el(doc, "div", "avatar");
        attr(&avatar, "aria-hidden", "true");
        append(&who, &avatar);
        let names = el(doc, "div", "visitor-text");
        append(&names, &text_el(doc, "p", "eyebrow", say::VISITOR));
        let heading = el(doc, "h2", "visitor-name");
        attr(&heading, "id", &unique_id("visitor-name"));
        // Focusable from script, so the agent lands here after connecting.
        attr(&heading, "tabindex", "-1");
        append(&names, &heading);
        let identity = el(doc, "p", "identity");
        append(&names, &identity);
        append(&who, &names);
        append(&about, &who);
        let hint = el(doc, "p", "identity-hint");
        append(&about, &hint);
        let facts = el(doc, "dl", "facts");
        append(&about, &facts);

        let (custom, custom_list) = section(doc, "custom", say::CUSTOM_DATA, "dl", "facts kv");
        append(&about, &custom);

        let (history, tickets) = section(doc, "history", say::EARLIER_SESSIONS, "ul", "tickets");
        // Lists styled without bullets lose their role in some browsers.
        attr(&tickets, "role", "list");
        let empty = text_el(doc, "p", "history-empty", say::NO_EARLIER_SESSIONS);
        append(&history, &empty);

        let card = VisitorCard {
            doc: doc.clone(),
            session_id: session_id.to_owned(),
            about,
            avatar,
            heading,
            identity,
            hint,
            facts,
            custom,
            custom_list,
            history,
            tickets,
            empty,
            current_outcome: RefCell::new(None),
        };
        card.show(visitor);
        card
    }

    /// The top of the card, to go first in the session card.
    pub fn about(&self) -> &Element {
        &self.about
    }

    /// The visitor's sessions, to go last in the session card.
    pub fn history(&self) -> &Element {
        &self.history
    }

    /// The visitor's name, the session card's heading.
    pub fn heading(&self) -> &Element {
        &self.heading
    }

    /// Shows `visitor`, replacing what was shown (a refresh after the
    /// session ended brings its outcome into the history).
    pub fn show(&self, visitor: &VisitorView) {
        let doc = &self.doc;
        self.avatar
            .set_text_content(Some(&text::initial(&visitor.display_name)));
        self.heading.set_text_content(Some(&visitor.display_name));

        let tone = match visitor.kind {
            IdentityKind::Verified => "verified",
            IdentityKind::Typed => "typed",
            IdentityKind::Anonymous => "anonymous",
        };
        self.identity.set_text_content(None);
        let class = ["identity-badge ", tone].concat();
        let badge = text_el(doc, "span", &class, text::identity_badge(visitor.kind));
        append(&self.identity, &badge);
        self.hint
            .set_text_content(Some(text::identity_hint(visitor.kind)));

        self.facts.set_text_content(None);
        let fact = |list: &Element, term: &str, value: &str, class: &str| {
            let row = el(doc, "div", "fact");
            append(&row, &text_el(doc, "dt", "", term));
            append(&row, &text_el(doc, "dd", class, value));
            append(list, &row);
        };
        if let Some(name) = &visitor.name {
            fact(&self.facts, say::NAME, name, "visitor-field");
        }
        if let Some(email) = &visitor.email {
            fact(&self.facts, say::EMAIL, email, "visitor-field");
        }
        // Only the site's signature makes a user id worth showing: a typed
        // one would be a claim an agent might act on.
        if let (IdentityKind::Verified, Some(id)) = (visitor.kind, &visitor.user_id) {
            fact(&self.facts, say::USER_ID, id, "visitor-field mono");
        }
        fact(&self.facts, say::SESSION, &self.session_id, "mono");

        self.custom_list.set_text_content(None);
        let custom = visitor.custom_data.as_ref().filter(|data| !data.is_empty());
        for (key, value) in custom.into_iter().flatten() {
            fact(&self.custom_list, key, value, "");
        }
        set_hidden(&self.custom, custom.is_none());

        self.tickets.set_text_content(None);
        self.current_outcome.borrow_mut().take();
        let when = DateFormat::new();
        for ticket in &visitor.tickets {
            append(&self.tickets, &self.ticket(ticket, &when));
        }
        set_hidden(&self.tickets, visitor.tickets.is_empty());
        let earlier = visitor
            .tickets
            .iter()
            .any(|t| t.session_id != self.session_id);
        set_hidden(&self.empty, earlier);
    }

    /// One session of the history: when, which agent, how it went.
    fn ticket(&self, ticket: &Ticket, when: &DateFormat) -> Element {
        let doc = &self.doc;
        let current = ticket.session_id == self.session_id;
        let item = el(doc, "li", if current { "ticket current" } else { "ticket" });
        let top = el(doc, "div", "ticket-top");
        let (iso, local) = when.format(ticket.created_at);
        let time = text_el(doc, "time", "ticket-when", &local);
        attr(&time, "datetime", &iso);
        append(&top, &time);
        if current {
            append(&top, &text_el(doc, "span", "ticket-tag", say::THIS_SESSION));
        }
        append(&item, &top);
        let meta = el(doc, "p", "ticket-meta");
        let agent = text::ticket_agent(ticket.agent_name.as_deref());
        append(&meta, &text_el(doc, "span", "ticket-agent", &agent));
        let outcome = el(doc, "span", "");
        set_outcome(&outcome, ticket.state, ticket.end_reason);
        append(&meta, &outcome);
        append(&item, &meta);
        if current {
            *self.current_outcome.borrow_mut() = Some(outcome);
        }
        item
    }

    /// Shows the live state of this session in its ticket, so the history
    /// does not say "Waiting for consent" beside "Connected".
    pub fn follow(&self, state: SessionState, reason: Option<EndReason>) {
        if let Some(outcome) = &*self.current_outcome.borrow() {
            set_outcome(outcome, state, reason);
        }
    }
}

fn set_outcome(outcome: &Element, state: SessionState, reason: Option<EndReason>) {
    let tone = match state {
        SessionState::Pending | SessionState::Authorizing => "ticket-outcome waiting",
        SessionState::Active => "ticket-outcome active",
        SessionState::Ended => "ticket-outcome ended",
    };
    outcome.set_class_name(tone);
    outcome.set_text_content(Some(text::ticket_outcome(state, reason)));
}

/// A titled section of the card: `<section>` labelled by its `<h3>`, and
/// the list that follows the heading.
fn section(doc: &Document, class: &str, title: &str, tag: &str, list: &str) -> (Element, Element) {
    let root = el(doc, "section", class);
    let heading = text_el(doc, "h3", "section-title", title);
    let id = unique_id(class);
    attr(&heading, "id", &id);
    attr(&root, "aria-labelledby", &id);
    append(&root, &heading);
    let list = el(doc, tag, list);
    append(&root, &list);
    (root, list)
}

/// The browser's date and time format for the agent's locale (its default
/// locale and time zone), made once per rendering of the history.
struct DateFormat(Intl::DateTimeFormat);

impl DateFormat {
    fn new() -> DateFormat {
        let options = Intl::DateTimeFormatOptions::new();
        options.set_date_style(Intl::DateTimeStyle::Medium);
        options.set_time_style(Intl::DateTimeStyle::Short);
        // No locales: the browser's own, which is the agent's.
        DateFormat(Intl::DateTimeFormat::new(&js_sys::Array::new(), &options))
    }

    /// `ms` since the epoch as (ISO 8601 for `<time datetime>`, local text).
    fn format(&self, ms: u64) -> (String, String) {
        let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
        // A time beyond what `Date` holds (the broker would not send one)
        // is `Invalid Date`, whose `toISOString` throws: show nothing.
        if date.get_time().is_nan() {
            return (String::new(), String::new());
        }
        let iso = String::from(date.to_iso_string());
        let local = self
            .0
            .format()
            .call1(&JsValue::UNDEFINED, &date)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| iso.clone());
        (iso, local)
    }
}
