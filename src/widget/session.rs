//! Following a session once its code exists: the event stream, the consent
//! prompt (ours or the site's `onConsent`), the session indicator, ending,
//! and picking the session up again after a reload or on another page.

use super::{deliver, object, CodeState, Inner, Live, Widget};
use crate::error::Error;
use crate::events::Emission;
use crate::i18n::{fill, Text};
use crate::saved::{self, Saved};
use crate::stream::SessionStream;
use crate::ui::code_modal::now;
use crate::ui::consent_prompt::ConsentPrompt;
use crate::ui::indicator::Indicator;
use agent_assist_protocol::{
    CreateCodeResponse, EndReason, ErrorCode, SessionState, SessionStatus,
};
use gloo_timers::callback::Timeout;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// How long the indicator stays to say the session ended.
const LINGER_MS: u32 = 6_000;
/// Pause before asking for a new stream ticket after a failed attempt.
const STREAM_RETRY_MS: u32 = 3_000;

/// The session this widget follows.
pub(super) struct Tracked {
    pub id: String,
    pub token: String,
    pub state: SessionState,
    pub agent: Option<String>,
}

impl Tracked {
    pub fn is_pending(&self) -> bool {
        self.state == SessionState::Pending
    }
}

impl Inner {
    /// The followed session's id and device token, for a call about it.
    fn credentials(&self) -> Option<(String, String)> {
        self.session
            .as_ref()
            .map(|s| (s.id.clone(), s.token.clone()))
    }

    /// A code was issued: follow its session from now on, in this tab.
    pub(super) fn start_session(&mut self, response: &CreateCodeResponse) {
        self.session = Some(Tracked {
            id: response.session_id.clone(),
            token: response.device_token.clone(),
            state: SessionState::Pending,
            agent: None,
        });
        let saved = Saved {
            id: response.session_id.clone(),
            token: response.device_token.clone(),
            code: response.code.clone(),
            deadline: js_sys::Date::now() + f64::from(response.expires_in) * 1000.0,
        };
        saved::save(&self.config.site_key, &saved);
    }

    /// The session is over: take its UI down (the indicator says why for a
    /// moment), forget it, and return the `session.ended` event. Nothing
    /// happens, and nothing is returned, when no session is followed, so
    /// each session ends once however its end is learned.
    pub(super) fn end_session(&mut self, reason: EndReason) -> Option<Emission> {
        let tracked = self.session.take()?;
        saved::clear(&self.config.site_key);
        self.stream = None;
        self.retry_stream = None;
        self.consent = None;
        self.sharing = None;
        if let Some(indicator) = self.indicator.as_ref() {
            let strings = &self.config.strings;
            let text = match reason {
                EndReason::AgentEnded => fill(
                    strings.get(Text::EndedByAgent),
                    tracked.agent.as_deref().unwrap_or(""),
                ),
                EndReason::DeviceEnded => strings.get(Text::EndedByYou).to_owned(),
                _ => strings.get(Text::Ended).to_owned(),
            };
            indicator.show_ended(&text);
        }
        let detail = object(&[
            ("sessionId", tracked.id.as_str().into()),
            ("reason", reason.as_str().into()),
        ]);
        Some(self.emission("session.ended", detail))
    }
}

impl Widget {
    /// Opens the event stream of session `id` with `ticket`.
    pub(super) fn follow(&self, id: &str, ticket: &str, last_event_id: Option<&str>) {
        let Ok(mut inner) = self.live() else { return };
        if inner.session.as_ref().is_none_or(|s| s.id != id) {
            return;
        }
        let on_status = {
            let this = self.clone();
            Rc::new(move |status| {
                let _ = this.call(move |w| {
                    w.on_status(status);
                    Ok(())
                });
            })
        };
        let on_closed = {
            let this = self.clone();
            Rc::new(move |last: Option<String>| this.renew_stream(last))
        };
        let base = inner.client.base().to_owned();
        inner.stream = SessionStream::open(&base, id, ticket, last_event_id, on_status, on_closed);
    }

    /// The stream gave up (its ticket expired, the broker restarted…): get a
    /// new ticket and continue after the last event seen.
    fn renew_stream(&self, last_event_id: Option<String>) {
        let Ok(mut inner) = self.live() else { return };
        inner.stream = None;
        let Some((id, token)) = inner.credentials() else {
            return;
        };
        let client = inner.client.clone();
        drop(inner);
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match client.ticket(&id, &token).await {
                Ok(t) => this.follow(&id, &t.ticket, last_event_id.as_deref()),
                Err(Error::Api { code, .. }) if gone(code) => this.forget(),
                Err(_) => {
                    // Transient (offline, broker restarting): try again soon.
                    let again = this.clone();
                    if let Ok(mut inner) = this.live() {
                        inner.retry_stream = Some(Timeout::new(STREAM_RETRY_MS, move || {
                            again.renew_stream(last_event_id);
                        }));
                    }
                }
            }
        });
    }

    /// The broker no longer knows the session (or our token): drop it quietly.
    fn forget(&self) {
        let emission = self
            .live()
            .ok()
            .and_then(|mut inner| inner.end_session(EndReason::DeviceEnded));
        drop(emission);
    }

    /// A new state of the followed session, from the stream or an answer.
    pub(super) fn on_status(&self, status: SessionStatus) {
        let emissions = {
            let Ok(mut inner) = self.live() else { return };
            let Some(tracked) = inner.session.as_mut() else {
                return;
            };
            // Only forward: a replayed older event (the stream starts from
            // the beginning after a resume) must not undo what we know.
            if tracked.id != status.session_id || status.state.rank() <= tracked.state.rank() {
                return;
            }
            tracked.state = status.state;
            if let Some(agent) = &status.agent {
                tracked.agent = Some(agent.name.clone());
            }
            let agent = tracked.agent.clone().unwrap_or_default();
            let id = tracked.id.clone();
            let updated = || {
                object(&[
                    ("sessionId", id.as_str().into()),
                    ("state", status.state.as_str().into()),
                    ("agentName", agent.as_str().into()),
                ])
            };
            let mut out = Vec::new();
            match status.state {
                SessionState::Pending => {}
                SessionState::Authorizing => {
                    // The code did its job: it is used now, so it neither
                    // expires nor gets withdrawn any more.
                    inner.generation = inner.generation.wrapping_add(1);
                    inner.expiry = None;
                    inner.code = CodeState::Idle;
                    if let Some(modal) = inner.modal.as_mut() {
                        modal.close();
                    }
                    out.push(inner.emission("session.updated", updated()));
                    match inner.config.on_consent.clone() {
                        Some(f) => {
                            let detail = object(&[
                                ("sessionId", id.as_str().into()),
                                ("agentName", agent.as_str().into()),
                            ]);
                            let this = self.clone();
                            wasm_bindgen_futures::spawn_local(async move {
                                let allow = ask_site(&f, &detail).await;
                                this.answer(allow);
                            });
                        }
                        None => {
                            if inner.ensure_mounted().is_ok() {
                                let this = self.clone();
                                if let Some(host) = inner.host.as_ref() {
                                    let prompt = ConsentPrompt::new(
                                        &inner.doc,
                                        &host.root,
                                        &inner.config.strings,
                                        &agent,
                                        Rc::new(move |allow| this.answer(allow)),
                                    );
                                    inner.consent = Some(prompt);
                                }
                            }
                        }
                    }
                }
                SessionState::Active => {
                    inner.consent = None;
                    if inner.ensure_mounted().is_ok() {
                        let this = self.clone();
                        if let Some(host) = inner.host.as_ref() {
                            let indicator = Indicator::new(
                                &inner.doc,
                                &host.root,
                                &inner.config.strings,
                                &agent,
                                Rc::new(move || this.end()),
                            );
                            inner.indicator = Some(indicator);
                        }
                    }
                    self.share(&mut inner);
                    out.push(inner.emission("session.updated", updated()));
                }
                SessionState::Ended => {
                    let reason = status.end_reason.unwrap_or(EndReason::DeviceEnded);
                    if matches!(inner.code, CodeState::Live(_)) {
                        // Ended while the code was on screen (it expired or
                        // was withdrawn elsewhere): the modal says so.
                        inner.generation = inner.generation.wrapping_add(1);
                        inner.expiry = None;
                        inner.code = CodeState::Expired;
                        if let Some(modal) = inner.modal.as_mut() {
                            modal.show_expired();
                        }
                    }
                    out.extend(inner.end_session(reason));
                    if inner.indicator.is_some() {
                        let this = self.clone();
                        inner.linger = Some(Timeout::new(LINGER_MS, move || {
                            if let Ok(mut inner) = this.live() {
                                inner.indicator = None;
                            }
                        }));
                    }
                }
            }
            out
        };
        deliver(emissions);
    }

    /// Sends the visitor's (or the site's) answer to the consent prompt.
    fn answer(&self, allow: bool) {
        let Ok(inner) = self.live() else { return };
        let Some((id, token)) = inner.credentials() else {
            return;
        };
        if let Some(prompt) = inner.consent.as_ref() {
            prompt.set_busy(true);
        }
        let client = inner.client.clone();
        drop(inner);
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match client.consent(&id, &token, allow).await {
                Ok(status) => this.on_status(status),
                Err(Error::Api { code, .. }) if code == ErrorCode::InvalidState || gone(code) => {
                    // Too late (timed out, or ended meanwhile): show the truth.
                    this.refresh(&id, &token).await;
                }
                Err(_) => {
                    if let Ok(inner) = this.live() {
                        if let Some(prompt) = inner.consent.as_ref() {
                            prompt.show_error(inner.config.strings.get(Text::ConsentError));
                        }
                    }
                }
            }
        });
    }

    /// The visitor's "Stop sharing".
    fn end(&self) {
        let Ok(inner) = self.live() else { return };
        let Some((id, token)) = inner.credentials() else {
            return;
        };
        if let Some(indicator) = inner.indicator.as_ref() {
            indicator.set_busy(true);
        }
        let client = inner.client.clone();
        drop(inner);
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            match client.end(&id, &token).await {
                Ok(status) => this.on_status(status),
                Err(_) => {
                    if let Ok(inner) = this.live() {
                        if let Some(indicator) = inner.indicator.as_ref() {
                            indicator.set_busy(false);
                        }
                    }
                }
            }
        });
    }

    async fn refresh(&self, id: &str, token: &str) {
        let client = match self.live() {
            Ok(inner) => inner.client.clone(),
            Err(_) => return,
        };
        match client.status(id, token).await {
            Ok(status) => self.on_status(status),
            Err(Error::Api { code, .. }) if gone(code) => self.forget(),
            Err(_) => {}
        }
    }

    /// After a reload or on another page of the site: pick up the session
    /// this tab was following, if any. Reads `sessionStorage` only; the
    /// broker is asked only when a session was saved there.
    pub fn resume(&self) {
        let (client, site_key) = match self.live() {
            Ok(inner) => (inner.client.clone(), inner.config.site_key.clone()),
            Err(_) => return,
        };
        let Some(saved) = saved::load(&site_key) else {
            return;
        };
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let status = match client.status(&saved.id, &saved.token).await {
                Ok(status) if status.state != SessionState::Ended => status,
                Ok(_) => return saved::clear(&site_key),
                Err(Error::Api { code, .. }) if gone(code) => return saved::clear(&site_key),
                // Offline or the broker is restarting: the next page tries again.
                Err(_) => return,
            };
            let left_ms = saved.deadline - js_sys::Date::now();
            {
                let Ok(mut inner) = this.live() else { return };
                if inner.session.is_some() {
                    return; // the visitor started something new meanwhile
                }
                inner.session = Some(Tracked {
                    id: saved.id.clone(),
                    token: saved.token.clone(),
                    state: SessionState::Pending,
                    agent: None,
                });
                if status.state == SessionState::Pending && left_ms > 0.0 {
                    let expires_in = (left_ms / 1000.0).ceil() as u32;
                    let response = CreateCodeResponse {
                        code: saved.code.clone(),
                        session_id: saved.id.clone(),
                        expires_at: status.expires_at,
                        expires_in,
                        device_token: saved.token.clone(),
                        stream_ticket: String::new(),
                    };
                    let generation = inner.generation;
                    let again = this.clone();
                    inner.expiry = Some(Timeout::new(left_ms as u32, move || {
                        let _ = again.call(move |w| {
                            w.expire(generation);
                            Ok(())
                        });
                    }));
                    inner.code = CodeState::Live(Live {
                        response,
                        deadline: now() + left_ms,
                    });
                }
            }
            if status.state == SessionState::Pending {
                // The visitor left with the code on screen: show it again.
                let _ = this.open();
            } else {
                this.on_status(status);
            }
            match client.ticket(&saved.id, &saved.token).await {
                Ok(t) => this.follow(&saved.id, &t.ticket, None),
                Err(_) => this.renew_stream(None),
            }
        });
    }
}

/// Errors that mean the session or its token is no longer valid.
fn gone(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::InvalidToken | ErrorCode::UnknownSession)
}

/// Calls the site's `onConsent(detail)`; a `true` (or a promise of `true`)
/// allows, anything else — including an exception — denies.
async fn ask_site(f: &js_sys::Function, detail: &JsValue) -> bool {
    let answer = match f.call1(&JsValue::NULL, detail) {
        Ok(v) => v,
        Err(e) => {
            web_sys::console::error_2(
                &"Agent Assist: onConsent threw; treating it as Deny".into(),
                &e,
            );
            return false;
        }
    };
    let answer = match answer.dyn_into::<js_sys::Promise>() {
        Ok(promise) => match JsFuture::from(promise).await {
            Ok(v) => v,
            Err(e) => {
                web_sys::console::error_2(
                    &"Agent Assist: onConsent rejected; treating it as Deny".into(),
                    &e,
                );
                return false;
            }
        },
        Err(v) => v,
    };
    answer.as_bool() == Some(true)
}
