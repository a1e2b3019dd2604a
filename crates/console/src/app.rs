//! The controller: which card is shown, the broker calls, and the agent's
//! sign-in kept for the tab.
//!
//! Components and the event stream report what happened as a [`Msg`]; the
//! message is handled in a microtask after the event that caused it, so a
//! handler may replace the very component whose listener sent it. Every
//! change of card starts a new *epoch*; messages and broker answers from an
//! earlier epoch (a redeem answer arriving after Sign out) are dropped.
//!
//! The session the agent follows is kept for the tab too, so a reload of
//! the console goes straight back to it (its card, its event stream and,
//! while it is `active`, the visitor's screen) instead of to a new code.

use crate::account_bar::AccountBar;
use crate::code_entry::CodeEntry;
use crate::error::{Error, Result};
use crate::mirror::{self, MirrorView};
use crate::session_panel::{PanelAction, SessionPanel};
use crate::sign_in::SignIn;
use crate::stream::{encode, SessionStream, StreamEvent};
use crate::text::{self, say};
use agent_assist_protocol::{
    AgentMe, RedeemRequest, RedeemResponse, SessionState, SessionStatus, StreamTicket, VisitorView,
};
use agent_assist_web::dom::{append, attr, el, text_el};
use agent_assist_web::http::Http;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::{Rc, Weak};
use web_sys::{Document, Element, Storage};

/// Where the agent's credential is kept: `sessionStorage`, so it lives as
/// long as the tab and is never shared with another tab or written to disk
/// for longer than the browser keeps the tab's session.
pub const TOKEN_KEY: &str = "agent-assist.console.token";

/// The id of the session the agent follows, kept like the credential (and
/// dropped with it) until the session ends, so a reload returns to it.
pub const SESSION_KEY: &str = "agent-assist.console.session";

pub enum Msg {
    SignIn(String),
    SignedIn {
        token: String,
        restored: bool,
        answer: Result<AgentMe>,
    },
    SignOut,
    Redeem(String),
    Redeemed {
        code: String,
        answer: Result<RedeemResponse>,
    },
    Panel(PanelAction),
    Ended(Result<SessionStatus>),
    Stream(StreamEvent),
    /// The visitor as the broker knows them after the session ended.
    Visitor(Result<VisitorView>),
    /// The followed session after a reload: `None` if it is over.
    Resumed(Result<Option<Resumed>>),
}

/// What the session card needs to show a session again after a reload.
pub struct Resumed {
    status: SessionStatus,
    visitor: VisitorView,
    ticket: String,
}

/// The agent, once the broker has confirmed who the credential belongs to.
struct Agent {
    token: String,
}

enum Card {
    None,
    Checking(Element),
    SignIn(SignIn),
    Code(CodeEntry),
    Session {
        id: String,
        panel: SessionPanel,
        /// Dropping the card closes the event source with it.
        stream: SessionStream,
    },
}

pub struct App {
    this: Weak<App>,
    doc: Document,
    /// Everything the console put in the page, removed when it is dropped.
    shell: Element,
    http: Http,
    storage: Option<Storage>,
    /// The top bar's right-hand side, where the account bar goes.
    bar_slot: Element,
    /// Where the current card goes.
    main: Element,
    epoch: Cell<u32>,
    agent: RefCell<Option<Agent>>,
    bar: RefCell<Option<AccountBar>>,
    card: RefCell<Card>,
}

impl App {
    /// Renders the console into `root` (replacing what it holds) for the
    /// broker at `base`, and resumes the tab's sign-in if there is one.
    pub fn start(root: &Element, base: String) -> Result<Rc<App>> {
        let window = web_sys::window().ok_or(Error::NoDocument)?;
        let doc = window.document().ok_or(Error::NoDocument)?;
        // Storage can be switched off by the browser's settings; the console
        // then still works, the agent just signs in again after a reload.
        let storage = window.session_storage().ok().flatten();

        root.set_text_content(None);
        let shell = el(&doc, "div", "console");
        let top = el(&doc, "header", "topbar");
        let brand = el(&doc, "div", "brand");
        let mark = el(&doc, "span", "brand-mark");
        attr(&mark, "aria-hidden", "true");
        append(&brand, &mark);
        append(&brand, &text_el(&doc, "span", "brand-name", "Agent Assist"));
        append(&brand, &text_el(&doc, "h1", "brand-title", say::TITLE));
        append(&top, &brand);
        let bar_slot = el(&doc, "div", "topbar-end");
        append(&top, &bar_slot);
        append(&shell, &top);
        let main = el(&doc, "main", "main");
        append(&shell, &main);
        append(root, &shell);

        let app = Rc::new_cyclic(|this| App {
            this: this.clone(),
            doc,
            shell,
            http: Http::new(base),
            storage,
            bar_slot,
            main,
            epoch: Cell::new(0),
            agent: RefCell::new(None),
            bar: RefCell::new(None),
            card: RefCell::new(Card::None),
        });
        match app.stored_token() {
            Some(token) => app.check(token, true),
            None => app.show_sign_in(None, None),
        }
        Ok(app)
    }

    fn stored_token(&self) -> Option<String> {
        let token = self.storage.as_ref()?.get_item(TOKEN_KEY).ok()??;
        (!token.is_empty()).then_some(token)
    }

    fn store_token(&self, token: Option<&str>) {
        self.store(TOKEN_KEY, token);
    }

    fn stored_session(&self) -> Option<String> {
        let id = self.storage.as_ref()?.get_item(SESSION_KEY).ok()??;
        (!id.is_empty()).then_some(id)
    }

    fn store_session(&self, id: Option<&str>) {
        self.store(SESSION_KEY, id);
    }

    fn store(&self, key: &str, value: Option<&str>) {
        if let Some(storage) = &self.storage {
            // A full or blocked storage only costs a sign-in (or the way
            // back to the session) after a reload.
            let _ = match value {
                Some(value) => storage.set_item(key, value),
                None => storage.remove_item(key),
            };
        }
    }

    /// A sender of messages for the current card: it goes quiet as soon as
    /// the card is replaced.
    fn sender<T: 'static>(&self, wrap: fn(T) -> Msg) -> Rc<dyn Fn(T)> {
        let (this, epoch) = (self.this.clone(), self.epoch.get());
        Rc::new(move |value| App::post(&this, Some(epoch), wrap(value)))
    }

    /// Handles `msg` in a microtask, if the app is alive and still in `epoch`.
    fn post(this: &Weak<App>, epoch: Option<u32>, msg: Msg) {
        let this = this.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Some(app) = this.upgrade() {
                if epoch.is_none_or(|e| e == app.epoch.get()) {
                    app.update(msg);
                }
            }
        });
    }

    /// Runs a broker call and hands its answer back as a message of this epoch.
    fn call<T: 'static>(
        &self,
        call: impl Future<Output = T> + 'static,
        done: impl FnOnce(T) -> Msg + 'static,
    ) {
        let (this, epoch) = (self.this.clone(), self.epoch.get());
        wasm_bindgen_futures::spawn_local(async move {
            let answer = call.await;
            App::post(&this, Some(epoch), done(answer));
        });
    }

    /// Removes the current card (dropping it removes its nodes and
    /// listeners and closes its event stream) and starts a new epoch, so
    /// senders made from here on belong to the next card.
    fn clear_card(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
        let old = std::mem::replace(&mut *self.card.borrow_mut(), Card::None);
        drop(old);
    }

    /// Shows `card`, made after [`App::clear_card`].
    fn set_card(&self, card: Card) {
        let node = match &card {
            Card::None => None,
            Card::Checking(e) => Some(e.clone()),
            Card::SignIn(c) => Some(c.element().clone()),
            Card::Code(c) => Some(c.element().clone()),
            Card::Session { panel, .. } => Some(panel.element().clone()),
        };
        if let Some(node) = node {
            append(&self.main, &node);
        }
        *self.card.borrow_mut() = card;
    }

    fn update(&self, msg: Msg) {
        match msg {
            Msg::SignIn(token) => {
                if let Card::SignIn(form) = &*self.card.borrow() {
                    form.set_busy(true);
                }
                self.check(token, false);
            }
            Msg::SignedIn {
                token,
                restored,
                answer,
            } => match answer {
                Ok(me) => {
                    self.store_token(Some(&token));
                    *self.agent.borrow_mut() = Some(Agent { token });
                    let text = text::signed_in_as(&me.agent.name, &me.site.name);
                    let sign_out = Rc::new({
                        let this = self.this.clone();
                        move |()| App::post(&this, None, Msg::SignOut)
                    });
                    let bar = AccountBar::new(&self.doc, &text, sign_out);
                    append(&self.bar_slot, bar.element());
                    *self.bar.borrow_mut() = Some(bar);
                    match self.stored_session() {
                        Some(id) => self.resume(id),
                        None => self.show_code_entry(),
                    }
                }
                Err(Error::InvalidToken) if restored => {
                    self.store_token(None);
                    self.show_sign_in(Some(say::SESSION_LOST), None);
                }
                Err(Error::InvalidToken) => self.refuse_sign_in(say::TOKEN_REFUSED),
                Err(e) if restored => self.show_sign_in(Some(&e.sentence()), None),
                Err(e) => self.refuse_sign_in(&e.sentence()),
            },
            Msg::SignOut => {
                self.store_token(None);
                self.signed_out(None, Some(say::SIGNED_OUT));
            }
            Msg::Redeem(code) => {
                let Some(token) = self.token() else { return };
                if let Card::Code(entry) = &*self.card.borrow() {
                    entry.set_busy(true);
                }
                let http = self.http.clone();
                let request = RedeemRequest { code: code.clone() };
                self.call(
                    async move {
                        http.call("POST", "/v1/agent/redeem", Some(&token), Some(&request))
                            .await
                            .map_err(Error::from)
                    },
                    move |answer| Msg::Redeemed { code, answer },
                );
            }
            Msg::Redeemed { code, answer } => match answer {
                Ok(RedeemResponse {
                    session,
                    visitor,
                    stream_ticket,
                }) => self.show_session(session, visitor, &stream_ticket),
                Err(Error::InvalidToken) => self.credential_refused(),
                Err(e) => {
                    if let Card::Code(entry) = &*self.card.borrow() {
                        match e {
                            Error::NoSuchCode => entry.reject(&text::no_such_code(&code)),
                            Error::RateLimited { retry_after } => entry.lock(retry_after),
                            e => entry.fail(&e.sentence()),
                        }
                    }
                }
            },
            Msg::Panel(PanelAction::End) => {
                let Some(token) = self.token() else { return };
                let id = match &*self.card.borrow() {
                    Card::Session { id, panel, .. } => {
                        panel.set_ending(true);
                        id.clone()
                    }
                    _ => return,
                };
                let http = self.http.clone();
                let path = ["/v1/sessions/", &encode(&id), "/end"].concat();
                self.call(
                    async move {
                        http.call::<(), SessionStatus>("POST", &path, Some(&token), None)
                            .await
                            .map_err(Error::from)
                    },
                    Msg::Ended,
                );
            }
            Msg::Ended(answer) => {
                let card = self.card.borrow();
                let Card::Session { id, panel, stream } = &*card else {
                    return;
                };
                match answer {
                    Ok(status) => {
                        self.follow(id, panel, &status);
                        if status.state == SessionState::Ended {
                            stream.close();
                        }
                    }
                    Err(Error::InvalidToken) => {
                        drop(card);
                        self.credential_refused();
                    }
                    // The session ended on its own meanwhile (the visitor
                    // denied or ended it): the stream brings that news.
                    Err(Error::Api {
                        code: agent_assist_protocol::ErrorCode::InvalidState,
                        ..
                    }) => panel.set_ending(false),
                    Err(e) => panel.show_error(&e.sentence()),
                }
            }
            Msg::Panel(PanelAction::NewCode) => {
                self.store_session(None);
                self.show_code_entry();
            }
            Msg::Visitor(answer) => {
                if let (Card::Session { panel, .. }, Ok(visitor)) = (&*self.card.borrow(), answer) {
                    panel.show_visitor(&visitor);
                }
                // On an error the history stays as it was: the session's
                // outcome is in the status region already, and whatever
                // the agent does next meets a refused credential there.
            }
            Msg::Stream(event) => {
                let card = self.card.borrow();
                let Card::Session { id, panel, .. } = &*card else {
                    return;
                };
                match event {
                    StreamEvent::Status(status) => self.follow(id, panel, &status),
                    StreamEvent::Live(live) => panel.set_live(live),
                    StreamEvent::CredentialRefused => {
                        drop(card);
                        self.credential_refused();
                    }
                }
            }
            Msg::Resumed(answer) => match answer {
                Ok(Some(resumed)) => {
                    self.show_session(resumed.status, resumed.visitor, &resumed.ticket)
                }
                Err(Error::InvalidToken) => self.credential_refused(),
                // Not answered: the next reload may still get back to it.
                Err(Error::Network) => self.show_code_entry(),
                // Over, or not this agent's (any more).
                Ok(None) | Err(_) => {
                    self.store_session(None);
                    self.show_code_entry();
                }
            },
        }
    }

    /// Shows a new status of the followed session `id`: the panel, the
    /// history once it ends, and the visitor's screen while it is active.
    fn follow(&self, id: &str, panel: &SessionPanel, status: &SessionStatus) {
        if status.session_id != id {
            return;
        }
        if panel.update(status) {
            self.store_session(None);
            self.refresh_visitor(id);
        }
        // The panel's state, not this status: a late, older status does not
        // bring the screen back.
        let active = panel.state() == Some(SessionState::Active);
        if active == panel.has_mirror() {
            return;
        }
        match self.token() {
            Some(token) if active => {
                let mirror = MirrorView::new(&self.doc, mirror::FRAME_SRC);
                mirror.connect(self.http.base(), token, id);
                panel.set_mirror(Some(mirror));
            }
            _ => panel.set_mirror(None),
        }
    }

    /// Goes back to session `id` after a reload, if it is not over.
    fn resume(&self, id: String) {
        let Some(token) = self.token() else { return };
        self.clear_card();
        let note = text_el(&self.doc, "p", "card checking", say::RESUMING);
        attr(&note, "role", "status");
        self.set_card(Card::Checking(note));
        let http = self.http.clone();
        self.call(
            async move {
                let path = ["/v1/sessions/", &encode(&id)].concat();
                let status: SessionStatus =
                    http.call::<(), _>("GET", &path, Some(&token), None).await?;
                if status.state == SessionState::Ended {
                    return Ok(None);
                }
                let visitor_path = [path.as_str(), "/visitor"].concat();
                let visitor: VisitorView = http
                    .call::<(), _>("GET", &visitor_path, Some(&token), None)
                    .await?;
                let ticket_path = [path.as_str(), "/ticket"].concat();
                let ticket: StreamTicket = http
                    .call::<(), _>("POST", &ticket_path, Some(&token), None)
                    .await?;
                Ok(Some(Resumed {
                    status,
                    visitor,
                    ticket: ticket.ticket,
                }))
            },
            Msg::Resumed,
        );
    }

    /// Asks the broker for the visitor again, so the history shows how the
    /// session that just ended went.
    fn refresh_visitor(&self, session_id: &str) {
        let Some(token) = self.token() else { return };
        let http = self.http.clone();
        let path = ["/v1/sessions/", &encode(session_id), "/visitor"].concat();
        self.call(
            async move {
                http.call::<(), VisitorView>("GET", &path, Some(&token), None)
                    .await
                    .map_err(Error::from)
            },
            Msg::Visitor,
        );
    }

    fn token(&self) -> Option<String> {
        self.agent.borrow().as_ref().map(|a| a.token.clone())
    }

    /// Asks the broker who `token` belongs to.
    fn check(&self, token: String, restored: bool) {
        if restored {
            self.clear_card();
            let note = text_el(&self.doc, "p", "card checking", say::CHECKING);
            attr(&note, "role", "status");
            self.set_card(Card::Checking(note));
        }
        let http = self.http.clone();
        let bearer = token.clone();
        self.call(
            async move {
                http.call::<(), AgentMe>("GET", "/v1/agent/me", Some(&bearer), None)
                    .await
                    .map_err(Error::from)
            },
            move |answer| Msg::SignedIn {
                token,
                restored,
                answer,
            },
        );
    }

    fn refuse_sign_in(&self, message: &str) {
        if let Card::SignIn(form) = &*self.card.borrow() {
            form.show_error(message);
        }
    }

    /// The broker no longer accepts the credential (expired JWT, revoked
    /// token): back to sign-in, saying why.
    fn credential_refused(&self) {
        self.store_token(None);
        self.signed_out(Some(say::SESSION_LOST), None);
    }

    fn signed_out(&self, error: Option<&str>, note: Option<&str>) {
        self.store_session(None);
        self.agent.borrow_mut().take();
        self.bar.borrow_mut().take();
        self.show_sign_in(error, note);
    }

    fn show_sign_in(&self, error: Option<&str>, note: Option<&str>) {
        self.clear_card();
        let form = SignIn::new(&self.doc, self.sender(Msg::SignIn));
        self.set_card(Card::SignIn(form));
        if let Card::SignIn(form) = &*self.card.borrow() {
            match error {
                Some(message) => form.show_error(message),
                None => form.focus(),
            }
            if let Some(note) = note {
                form.show_note(note);
            }
        }
    }

    fn show_code_entry(&self) {
        self.clear_card();
        let entry = CodeEntry::new(&self.doc, self.sender(Msg::Redeem));
        self.set_card(Card::Code(entry));
        if let Card::Code(entry) = &*self.card.borrow() {
            entry.focus_first();
        }
    }

    /// Shows session `status` (just redeemed, or found again after a
    /// reload: never over) and follows it with the stream `ticket` opens.
    fn show_session(&self, status: SessionStatus, visitor: VisitorView, ticket: &str) {
        let Some(token) = self.token() else { return };
        self.clear_card();
        let session_id = status.session_id.clone();
        self.store_session(Some(&session_id));
        let panel = SessionPanel::new(&self.doc, &session_id, &visitor, self.sender(Msg::Panel));
        let stream = SessionStream::open(
            self.http.clone(),
            token,
            session_id.clone(),
            ticket,
            self.sender(Msg::Stream),
        );
        self.set_card(Card::Session {
            id: session_id,
            panel,
            stream,
        });
        if let Card::Session { id, panel, .. } = &*self.card.borrow() {
            self.follow(id, panel, &status);
            panel.focus();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.shell.remove();
    }
}
