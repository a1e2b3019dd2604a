//! The widget's controller: the code's life (requested, live, expired,
//! withdrawn), who asks for it (the visitor id, the site's `identify()`, the
//! identity form), the session that follows it (see `session`), the UI
//! components that show all that, and the events the page sees.
//!
//! State lives in one `Rc<RefCell<Inner>>`. Borrows are short: events are
//! collected under the borrow and delivered after it is released, because a
//! page listener may call back into us. Some page code does run under the
//! borrow, though: moving focus (the modal opening, Close returning focus
//! to the page) runs the page's focus listeners there and then. So nothing
//! here borrows with a panic on failure (a panic in wasm is an exception
//! thrown into the page, and leaves the widget unusable), and a call that
//! finds the widget busy waits for the update to end ([`Widget::call`]).
//!
//! The UI's listeners hold strong references to the controller, so a mounted
//! widget lives as long as the page does even if the page drops its handle;
//! `destroy()` drops the UI and so breaks that cycle.

mod mirror;
mod session;

use crate::client::BrokerClient;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{object, Emission, Emitter};
use crate::stream::SessionStream;
use crate::ui::code_modal::{now, Action, CodeModal};
use crate::ui::consent_prompt::ConsentPrompt;
use crate::ui::footer_link::FooterLink;
use crate::ui::identity_form::FormAction;
use crate::ui::indicator::Indicator;
use crate::ui::{Host, LINK_CSS};
use crate::visitor::VisitorId;
use agent_assist_protocol::{
    AuthMode, CreateCodeRequest, CreateCodeResponse, EndReason, ErrorCode, Identity, VisitorInfo,
};
use agent_assist_web::dom;
use gloo_timers::callback::Timeout;
use js_sys::Function;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use web_sys::{Document, Element};

/// How long `open()` waits for the code before it shows the modal with the
/// placeholder: a code quicker than this appears with the modal, in one
/// frame, with no placeholder flashing by. Below the ~100 ms under which a
/// response to a click feels immediate.
const OPEN_GRACE_MS: u32 = 50;

#[derive(Clone)]
pub struct Widget(Rc<RefCell<Inner>>);

struct Inner {
    config: Config,
    client: BrokerClient,
    doc: Document,
    events: Emitter,
    host: Option<Host>,
    link: Option<FooterLink>,
    modal: Option<CodeModal>,
    code: CodeState,
    /// Fires when the live code expires.
    expiry: Option<Timeout>,
    /// Bumped whenever the current request or code is abandoned, so a late
    /// answer or timer of an earlier one is recognised and ignored.
    generation: u32,
    /// `createSessionCode()` callers waiting for the request in flight.
    waiters: Vec<(Function, Function)>,
    /// Where focus was before the modal opened, when the link was not used.
    return_focus: Option<Element>,
    destroyed: bool,
    /// The session being followed, from its code's creation to its end.
    session: Option<session::Tracked>,
    stream: Option<SessionStream>,
    /// Reconnects the stream a little later after a failed attempt.
    retry_stream: Option<Timeout>,
    consent: Option<ConsentPrompt>,
    indicator: Option<Indicator>,
    /// Takes the "session ended" indicator away a few seconds after the end.
    linger: Option<Timeout>,
    /// The anonymous visitor id, made at the first code request.
    visitor_id: VisitorId,
    /// The site's logged-in user, from `identify()`; sent with every code
    /// request until `reset()`.
    identity: Option<Identity>,
    /// What the visitor last typed into the form (or gave
    /// `createSessionCode`); `None` before that, or as a guest. A new code
    /// after an error or expiry goes with the same data without asking again.
    typed: Option<VisitorInfo>,
    /// Imports the co-browsing module (given by the loader or npm entry).
    cobrowse: Option<Function>,
    /// The mirror of the page while a session is active.
    sharing: Option<mirror::Sharing>,
    /// The modal is the boot module's, taken over open and waiting for
    /// `open()` to go on.
    adopted_modal: bool,
    /// Opens the modal (with its placeholder) if the code's answer has not
    /// come by then; the answer opens it otherwise (see `open`).
    opening: Option<Timeout>,
}

enum CodeState {
    Idle,
    Requesting,
    Live(Live),
    Expired,
    Failed,
}

struct Live {
    response: CreateCodeResponse,
    /// `performance.now()` time of expiry. Counted from when the answer
    /// arrived, with the broker's `expires_in`, so a wrong clock on the
    /// visitor's device cannot distort the countdown.
    deadline: f64,
}

impl Live {
    fn to_js(&self) -> JsValue {
        let r = &self.response;
        object(&[
            ("code", r.code.as_str().into()),
            ("sessionId", r.session_id.as_str().into()),
            ("expiresAt", (r.expires_at as f64).into()),
            ("expiresIn", r.expires_in.into()),
        ])
    }
}

impl Widget {
    /// A widget for `config`. `adopt` is the boot module's host element: the
    /// widget takes it over, with the footer link inside it.
    pub fn new(
        config: Config,
        cobrowse: Option<Function>,
        adopt: Option<Element>,
    ) -> Result<Widget> {
        let doc = crate::mount::document()?;
        let client = BrokerClient::new(config.broker.clone());
        let visitor_id = VisitorId::new(&config.site_key, config.visitor_storage);
        let host = adopt.map(Host::adopt).transpose()?;
        let adopted_link = host.as_ref().and_then(Host::link_button);
        let widget = Widget(Rc::new(RefCell::new(Inner {
            config,
            client,
            doc,
            events: Emitter::default(),
            host,
            link: None,
            modal: None,
            code: CodeState::Idle,
            expiry: None,
            generation: 0,
            waiters: Vec::new(),
            return_focus: None,
            destroyed: false,
            session: None,
            stream: None,
            retry_stream: None,
            consent: None,
            indicator: None,
            linger: None,
            visitor_id,
            identity: None,
            typed: None,
            cobrowse,
            sharing: None,
            adopted_modal: false,
            opening: None,
        })));
        if let Some(button) = adopted_link {
            let this = widget.clone();
            let mut inner = widget.0.borrow_mut();
            let link = FooterLink::adopt(button, move || {
                let _ = this.call(Widget::open);
            });
            link.set_hidden(inner.awaits_identity());
            inner.link = Some(link);
        }
        // The boot module's modal, open with its placeholder since the
        // visitor's click: it becomes ours, and `open()` carries on in it.
        let adopted_modal = {
            let inner = widget.0.borrow();
            inner.host.as_ref().and_then(|host| {
                CodeModal::adopt(
                    &inner.doc,
                    &host.root,
                    &inner.config.strings,
                    widget.modal_actions(),
                )
            })
        };
        if let Some(modal) = adopted_modal {
            let mut inner = widget.0.borrow_mut();
            inner.modal = Some(modal);
            inner.adopted_modal = true;
        }
        Ok(widget)
    }

    /// What the code modal's buttons and Esc do.
    fn modal_actions(&self) -> crate::ui::code_modal::OnAction {
        let this = self.clone();
        Rc::new(move |action| {
            let _ = match action {
                Action::Cancel => this.call(Widget::close),
                Action::Retry => this.call(|w| {
                    w.request();
                    Ok(())
                }),
            };
        })
    }

    /// The state, unless the widget was destroyed or is in the middle of an
    /// update (see [`Widget::call`]).
    fn live(&self) -> Result<std::cell::RefMut<'_, Inner>> {
        let inner = self.0.try_borrow_mut().map_err(|_| Error::Busy)?;
        if inner.destroyed {
            return Err(Error::Destroyed);
        }
        Ok(inner)
    }

    /// Runs `f`, a call from the page or from the browser (a click, a timer,
    /// an answer), now or, when it comes in the middle of one of the
    /// widget's own updates, right after that update, a microtask later.
    /// That happens when a page focus listener calls us while we move focus
    /// (see the module comment): the call must neither find the state
    /// half-updated nor be refused. Its caller has returned by then, so what
    /// it would have thrown goes to the console.
    pub fn call(&self, f: impl FnOnce(&Widget) -> Result<()> + 'static) -> Result<()> {
        if self.0.try_borrow_mut().is_ok() {
            return f(self);
        }
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(err) = f(&this) {
                web_sys::console::error_1(&JsValue::from(err));
            }
        });
        Ok(())
    }

    pub fn on(&self, event: &str, f: Function) -> Result<()> {
        self.live()?.events.on(event, f)
    }

    pub fn off(&self, event: &str, f: &Function) -> Result<()> {
        self.live()?.events.off(event, f)
    }

    /// Puts the footer link into `parent` (or the default place).
    pub fn mount_footer_link(&self, parent: Option<Element>) -> Result<()> {
        let mut inner = self.live()?;
        let parent = match parent {
            Some(p) => p,
            None => crate::mount::default_parent(&inner.doc)?,
        };
        inner.ensure_host()?;
        // The page took the link out of our shadow root: a new one replaces it.
        let root = inner.host.as_ref().ok_or(Error::Destroyed)?.root.clone();
        let root: &web_sys::Node = root.as_ref();
        if inner
            .link
            .as_ref()
            .is_some_and(|l| l.button.parent_node().as_ref() != Some(root))
        {
            inner.link = None;
        }
        if inner.link.is_none() {
            let this = self.clone();
            let label = inner.config.strings.get(crate::i18n::Text::Link).to_owned();
            let (doc, root) = {
                let host = inner.host.as_ref().ok_or(Error::Destroyed)?;
                (inner.doc.clone(), host.root.clone())
            };
            let link = FooterLink::new(&doc, &root, &label, move || {
                let _ = this.call(Widget::open);
            });
            link.set_hidden(inner.awaits_identity());
            inner.link = Some(link);
        }
        let host = inner.host.as_ref().ok_or(Error::Destroyed)?;
        // Already there: nothing moves (moving would close and reopen an
        // open modal, and its focus, for nothing).
        if host.element.parent_element().as_ref() != Some(&parent) {
            host.mount(&parent)?;
            inner.reopen();
        }
        Ok(())
    }

    /// Opens the modal and asks for a code unless a live one is at hand.
    pub fn open(&self) -> Result<()> {
        let mut inner = self.live()?;
        if inner.session.as_ref().is_some_and(|s| !s.is_pending()) {
            // A session is already past its code (consent asked, or active):
            // the prompt or the indicator is what the visitor needs.
            return Ok(());
        }
        let live = matches!(inner.code, CodeState::Live(_));
        if !live && inner.awaits_identity() {
            // Nobody to make a code for yet (and the link is hidden).
            return Err(Error::NotIdentified);
        }
        let removed = inner.host.as_ref().is_some_and(|h| !h.is_mounted());
        if removed {
            // The page took the widget out of the page: the modal comes back
            // (at the end of <body>), with what was open in it; the link
            // does not, until `mountFooterLink()`.
            inner.link = None;
        }
        inner.ensure_mounted()?;
        if removed {
            inner.reopen();
        }
        if inner.modal.as_ref().is_some_and(|m| !m.is_in_page()) {
            // The page took the modal out of our shadow root: a new one
            // replaces it.
            inner.modal = None;
        }
        // The boot module's modal, taken over open: what it waited for
        // (the code, or the form) goes on in it.
        let adopted = std::mem::take(&mut inner.adopted_modal);
        if inner.modal.as_ref().is_some_and(CodeModal::is_open) && !adopted {
            return Ok(());
        }
        if inner.modal.is_none() {
            let on_action = self.modal_actions();
            let host = inner.host.as_ref().ok_or(Error::Destroyed)?;
            let modal = CodeModal::new(
                &inner.doc,
                &host.root,
                &inner.config.strings,
                inner.config.privacy_url.as_deref(),
                on_action,
            );
            inner.modal = Some(modal);
        }
        inner.return_focus = if inner.link.is_some() {
            None
        } else {
            inner.doc.active_element()
        };
        let shown = match &inner.code {
            CodeState::Live(live) => Some((live.response.code.clone(), live.deadline)),
            _ => None,
        };
        let requesting = matches!(inner.code, CodeState::Requesting);
        let form = inner.form_wanted();
        if shown.is_none() && !requesting && form.is_none() {
            // The request goes out first, and the dialog opens at its answer,
            // or after `OPEN_GRACE_MS` with the placeholder if the answer is
            // slower. Opening a modal dialog makes the browser restyle the
            // whole page (it becomes inert) and lay the dialog out: done in
            // the click, that work held the answer up, and the browser drew
            // the placeholder in one frame and the code a frame later. Now a
            // quick broker's code is in the dialog's first frame, and a slow
            // one's placeholder shows a moment later than it did, still well
            // under what a visitor perceives as a delay.
            drop(inner);
            self.request();
            inner = self.live()?;
            if matches!(inner.code, CodeState::Requesting) {
                let generation = inner.generation;
                let this = self.clone();
                inner.opening = Some(Timeout::new(OPEN_GRACE_MS, move || {
                    let _ = this.call(move |w| {
                        w.open_pending(generation);
                        Ok(())
                    });
                }));
                return Ok(());
            }
            inner.modal.as_ref().ok_or(Error::Destroyed)?.open();
            return Ok(());
        }
        inner.opening = None;
        let typed = inner.typed.clone();
        let modal = inner.modal.as_mut().ok_or(Error::Destroyed)?;
        modal.open();
        match shown {
            Some((code, deadline)) => modal.show_code(&code, deadline),
            // A `createSessionCode()` call is on its way: wait for it.
            None if requesting => modal.show_loading(),
            // Neither a code nor a request: the form (a request without
            // one went out above).
            None => {
                if let Some(guest) = form {
                    let this = self.clone();
                    let on_form = Rc::new(move |action| this.submit_form(action));
                    modal.show_form(guest, typed.as_ref(), on_form);
                }
            }
        }
        Ok(())
    }

    /// The code is slower than `OPEN_GRACE_MS`: the modal opens with its
    /// placeholder.
    fn open_pending(&self, generation: u32) {
        let Ok(mut inner) = self.live() else { return };
        if inner.opening.take().is_some() && inner.generation == generation {
            if let Some(modal) = inner.modal.as_ref() {
                modal.open();
            }
        }
    }

    /// The visitor filled in the form, or chose to continue as a guest.
    fn submit_form(&self, action: FormAction) {
        match self.live() {
            Ok(mut inner) => {
                inner.typed = match action {
                    FormAction::Submit(info) => Some(info),
                    FormAction::Guest => None,
                }
            }
            Err(_) => return,
        }
        self.request();
    }

    /// `identify()`: the site's logged-in user, sent with every code request
    /// from now on. Shows the link a `code` site hides until then. A
    /// different user than before withdraws the previous user's code.
    pub fn identify(&self, identity: Identity) -> Result<()> {
        let other_user = {
            let mut inner = self.live()?;
            let other_user = inner
                .identity
                .as_ref()
                .is_some_and(|old| old.user_id != identity.user_id);
            inner.identity = Some(identity);
            if let Some(link) = inner.link.as_ref() {
                link.set_hidden(false);
            }
            other_user && !matches!(inner.code, CodeState::Idle)
        };
        if other_user {
            self.close()?;
        }
        Ok(())
    }

    /// `reset()` (logout, shared devices): forgets the visitor id, the
    /// identity and what was typed on this browser, and withdraws the code
    /// on display. A `code` site's link hides until the next `identify()`.
    pub fn reset(&self) -> Result<()> {
        {
            let mut inner = self.live()?;
            inner.visitor_id.forget();
            inner.identity = None;
            inner.typed = None;
            let hidden = inner.awaits_identity();
            if let Some(link) = inner.link.as_ref() {
                link.set_hidden(hidden);
            }
        }
        self.close()
    }

    /// Closes the modal and withdraws the code at the broker.
    pub fn close(&self) -> Result<()> {
        let emissions = {
            let mut inner = self.live()?;
            let emissions = inner.withdraw();
            inner.opening = None;
            let was_open = inner.modal.as_mut().is_some_and(|modal| {
                let open = modal.is_open();
                modal.close();
                open
            });
            if was_open {
                let earlier = inner.return_focus.take();
                let target = inner.link.as_ref().map(|l| l.button.clone()).or(earlier);
                if let Some(target) = target {
                    dom::focus(&target);
                }
            }
            emissions
        };
        deliver(emissions);
        Ok(())
    }

    /// Withdraws the live code (if any) without touching the UI's open state.
    pub fn cancel_code(&self) -> Result<()> {
        let emissions = self.live()?.withdraw();
        deliver(emissions);
        Ok(())
    }

    /// `createSessionCode()`: the live code, or a new one (with `visitor`,
    /// if given, as the form's data; an error there rejects). Concurrent
    /// calls share one request.
    pub fn create_session_code(&self, visitor: Result<Option<VisitorInfo>>) -> js_sys::Promise {
        let this = self.clone();
        js_sys::Promise::new(&mut move |resolve, reject| {
            let visitor = visitor.clone();
            let _ = this.call(move |w| {
                w.ask_code(visitor, resolve, reject);
                Ok(())
            });
        })
    }

    /// `createSessionCode()`'s work, settling its promise.
    fn ask_code(&self, visitor: Result<Option<VisitorInfo>>, resolve: Function, reject: Function) {
        let outcome = match (visitor, self.live()) {
            (Err(e), _) | (_, Err(e)) => Err(e),
            (Ok(visitor), Ok(mut inner)) => match &inner.code {
                CodeState::Live(live) => Ok(Some(live.to_js())),
                _ => {
                    if visitor.is_some() {
                        inner.typed = visitor;
                    }
                    inner.waiters.push((resolve.clone(), reject.clone()));
                    Ok(None)
                }
            },
        };
        match outcome {
            Ok(Some(value)) => {
                let _ = resolve.call1(&JsValue::NULL, &value);
            }
            Ok(None) => self.request(),
            Err(e) => {
                let _ = reject.call1(&JsValue::NULL, &JsValue::from(e));
            }
        }
    }

    /// Starts a code request unless one is in flight (single flight).
    fn request(&self) {
        let (generation, answer) = {
            let Ok(mut inner) = self.live() else { return };
            match inner.code {
                CodeState::Requesting => return,
                CodeState::Live(_) => {
                    // A retry while a code is live cannot happen from the UI;
                    // resolve any waiter with the live code.
                    drop(inner);
                    return self.settle_waiters_with_live();
                }
                _ => {}
            }
            if inner.awaits_identity() {
                let waiters = std::mem::take(&mut inner.waiters);
                drop(inner);
                for (_, reject) in waiters {
                    let _ = reject.call1(&JsValue::NULL, &JsValue::from(Error::NotIdentified));
                }
                return;
            }
            inner.code = CodeState::Requesting;
            // The visitor id is made here, at the first request, and not
            // before: a page load writes nothing (seed 001).
            let body = CreateCodeRequest {
                visitor_id: inner.visitor_id.get_or_create(),
                site_key: inner.config.site_key.clone(),
                visitor: inner.typed.clone(),
                identity: inner.identity.clone(),
            };
            // On the wire first, then the placeholder drawn.
            let answer = inner.client.create_code(&body);
            if let Some(modal) = inner.modal.as_mut() {
                modal.show_loading();
            }
            (inner.generation, answer)
        };
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = answer.await;
            let _ = this.call(move |w| {
                w.finish_request(generation, result);
                Ok(())
            });
        });
    }

    fn settle_waiters_with_live(&self) {
        let (waiters, value) = {
            let Ok(mut inner) = self.live() else { return };
            let value = match &inner.code {
                CodeState::Live(live) => live.to_js(),
                _ => return,
            };
            (std::mem::take(&mut inner.waiters), value)
        };
        for (resolve, _) in waiters {
            let _ = resolve.call1(&JsValue::NULL, &value);
        }
    }

    fn finish_request(&self, generation: u32, result: Result<CreateCodeResponse>) {
        // Not busy: this runs through `call`.
        let Ok(mut inner) = self.0.try_borrow_mut() else {
            return;
        };
        if inner.destroyed || inner.generation != generation {
            // The visitor closed the modal while the code was on its way:
            // withdraw it at once so it can never be redeemed.
            if let Ok(response) = result {
                spawn_cancel(&inner.client, &response);
            }
            return;
        }
        let waiters = std::mem::take(&mut inner.waiters);
        // Not shown yet (the answer beat `OPEN_GRACE_MS`): the dialog opens
        // now, with the code or the error in it.
        let opens_now = inner.opening.take().is_some();
        if opens_now {
            if let Some(modal) = inner.modal.as_ref() {
                modal.open();
            }
        }
        match result {
            Ok(response) => {
                let deadline = now() + f64::from(response.expires_in) * 1000.0;
                let ticket = response.stream_ticket.clone();
                let session_id = response.session_id.clone();
                inner.start_session(&response);
                let live = Live { response, deadline };
                let value = live.to_js();
                let this = self.clone();
                let ms = live.response.expires_in.saturating_mul(1000);
                inner.expiry = Some(Timeout::new(ms, move || {
                    let _ = this.call(move |w| {
                        w.expire(generation);
                        Ok(())
                    });
                }));
                if let Some(modal) = inner.modal.as_mut() {
                    modal.show_code(&live.response.code, deadline);
                    if opens_now {
                        modal.announce_after_open();
                    }
                }
                inner.code = CodeState::Live(live);
                let emission = inner.emission("code.created", value.clone());
                drop(inner);
                self.follow(&session_id, &ticket, None);
                for (resolve, _) in waiters {
                    let _ = resolve.call1(&JsValue::NULL, &value);
                }
                emission.deliver();
            }
            Err(err) => {
                inner.code = CodeState::Failed;
                let identity_refused = matches!(
                    err,
                    Error::Api {
                        code: ErrorCode::IdentityRequired | ErrorCode::InvalidIdentity,
                        ..
                    }
                );
                let busy = matches!(
                    err,
                    Error::Api {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                );
                if let Some(modal) = inner.modal.as_mut() {
                    if identity_refused {
                        modal.show_identity_error();
                    } else if busy {
                        modal.show_busy();
                    } else {
                        modal.show_error(matches!(err, Error::Network | Error::Timeout));
                    }
                    if opens_now {
                        modal.announce_after_open();
                    }
                }
                if !err.is_transient() && !busy {
                    // A configuration problem (unknown site key, origin not
                    // allowed…): tell the site's developer in the console.
                    web_sys::console::error_1(&err.message().into());
                }
                let emission = inner.emission("error", err.detail());
                drop(inner);
                for (_, reject) in waiters {
                    let _ = reject.call1(&JsValue::NULL, &JsValue::from(err.clone()));
                }
                emission.deliver();
            }
        }
    }

    fn expire(&self, generation: u32) {
        let emissions = {
            // Not busy: this runs through `call`.
            let Ok(mut inner) = self.0.try_borrow_mut() else {
                return;
            };
            if inner.destroyed || inner.generation != generation {
                return;
            }
            let session_id = match &inner.code {
                CodeState::Live(live) => live.response.session_id.clone(),
                _ => return,
            };
            inner.code = CodeState::Expired;
            inner.expiry = None;
            // The code's session is over; a later request is a new one.
            inner.generation = inner.generation.wrapping_add(1);
            if let Some(modal) = inner.modal.as_mut() {
                modal.show_expired();
            }
            let mut out = vec![inner.emission(
                "code.expired",
                object(&[("sessionId", session_id.as_str().into())]),
            )];
            out.extend(inner.end_session(EndReason::PendingTimeout));
            out
        };
        deliver(emissions);
    }

    /// Removes everything the widget added to the page and withdraws its code.
    pub fn destroy(&self) {
        let (ui, emissions) = {
            let Ok(mut inner) = self.0.try_borrow_mut() else {
                return;
            };
            if inner.destroyed {
                return;
            }
            let emissions = inner.withdraw();
            inner.destroyed = true;
            inner.events.clear();
            inner.stream = None;
            inner.retry_stream = None;
            inner.opening = None;
            inner.linger = None;
            // Dropped after the borrow ends: their Drop impls remove nodes
            // and listeners, and the listeners hold clones of this widget.
            let ui = (
                inner.sharing.take(),
                inner.consent.take(),
                inner.indicator.take(),
                inner.modal.take(),
                inner.link.take(),
                inner.host.take(),
            );
            (ui, emissions)
        };
        drop(ui);
        drop(emissions);
    }
}

impl Inner {
    /// True while a `code` site has not said who its user is: no link, no code.
    fn awaits_identity(&self) -> bool {
        self.config.auth == AuthMode::Code && self.identity.is_none()
    }

    /// `Some(guest)` when the form comes before the code: `form` and
    /// `optional-form` sites (`guest`: with "Continue as guest"), unless the
    /// site already identified its user.
    fn form_wanted(&self) -> Option<bool> {
        match self.config.auth {
            _ if self.identity.is_some() => None,
            AuthMode::Form => Some(false),
            AuthMode::OptionalForm => Some(true),
            AuthMode::Visitor | AuthMode::Code => None,
        }
    }

    fn ensure_host(&mut self) -> Result<()> {
        let (theme, lang) = (self.config.theme, self.config.strings.lang);
        Host::ensure(&mut self.host, &self.doc, theme, lang, LINK_CSS).map(drop)
    }

    /// Moving the host (or the page taking it out and our putting it back)
    /// takes open dialogs and the indicator out of the top layer: they stay
    /// open only as plain elements. This puts them back.
    fn reopen(&self) {
        if let Some(modal) = self.modal.as_ref() {
            modal.reopen();
        }
        if let Some(consent) = self.consent.as_ref() {
            consent.reopen();
        }
        if let Some(indicator) = self.indicator.as_ref() {
            indicator.reopen();
        }
    }

    fn ensure_mounted(&mut self) -> Result<()> {
        let (theme, lang) = (self.config.theme, self.config.strings.lang);
        Host::ensure_in_page(&mut self.host, &self.doc, theme, lang, LINK_CSS).map(drop)
    }

    /// Forgets the current code or request; a live code is cancelled at the
    /// broker. Returns the events to deliver.
    fn withdraw(&mut self) -> Vec<Emission> {
        self.generation = self.generation.wrapping_add(1);
        self.expiry = None;
        let waiters = std::mem::take(&mut self.waiters);
        for (_, reject) in waiters {
            let cancelled = Error::Js("the code request was cancelled".into());
            let _ = reject.call1(&JsValue::NULL, &JsValue::from(cancelled));
        }
        match std::mem::replace(&mut self.code, CodeState::Idle) {
            CodeState::Live(live) => {
                spawn_cancel(&self.client, &live.response);
                let detail = object(&[("sessionId", live.response.session_id.as_str().into())]);
                let mut out = vec![self.emission("code.cancelled", detail)];
                out.extend(self.end_session(EndReason::DeviceCancelled));
                out
            }
            _ => Vec::new(),
        }
    }

    fn emission(&self, event: &str, detail: JsValue) -> Emission {
        Emission {
            listeners: self.events.listeners(event),
            detail,
        }
    }
}

fn deliver(emissions: Vec<Emission>) {
    for e in emissions {
        e.deliver();
    }
}

fn spawn_cancel(client: &BrokerClient, response: &CreateCodeResponse) {
    let client = client.clone();
    let (id, token) = (response.session_id.clone(), response.device_token.clone());
    wasm_bindgen_futures::spawn_local(async move {
        // Best effort: if this fails the code still expires at the broker.
        let _ = client.cancel(&id, &token).await;
    });
}
