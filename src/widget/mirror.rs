//! Co-browsing, from the widget's side. Once the visitor allows (or a page
//! of an active session loads), the co-browsing module is fetched and
//! started: a separate wasm module that mirrors the page to the agent, with
//! private fields redacted in this browser. It is loaded only then, so the
//! page-load weight of the widget does not grow with it.
//!
//! The widget does not know where the module is: the script-tag loader and
//! the npm entry point each pass a function that imports it (`init`'s second
//! argument). Without one, a session works but shows nothing to the agent.

use super::{object, Inner, Widget};
use crate::i18n::{fill, Text};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The running mirror of one session (or the one being loaded).
pub(super) struct Sharing {
    session_id: String,
    /// The module's `Mirror`, once started.
    handle: Option<JsValue>,
    _on_state: Closure<dyn FnMut(JsValue)>,
}

impl Drop for Sharing {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if let Ok(stop) = Reflect::get(&handle, &JsValue::from_str("stop")) {
                if let Some(stop) = stop.dyn_ref::<Function>() {
                    let _ = stop.call0(&handle);
                }
            }
        }
    }
}

impl Widget {
    /// The session is active on this page: start mirroring it, once.
    pub(super) fn share(&self, inner: &mut Inner) {
        let Some(loader) = inner.cobrowse.clone() else {
            return;
        };
        let Some(tracked) = inner.session.as_ref() else {
            return;
        };
        if inner
            .sharing
            .as_ref()
            .is_some_and(|s| s.session_id == tracked.id)
        {
            return;
        }
        let this = self.clone();
        let on_state = Closure::<dyn FnMut(JsValue)>::new(move |state: JsValue| {
            this.on_share_state(state.as_string().unwrap_or_default());
        });
        let options = object(&[
            ("broker", inner.config.broker.as_str().into()),
            ("sessionId", tracked.id.as_str().into()),
            ("token", tracked.token.as_str().into()),
            ("redact", inner.config.redact.clone().into()),
            ("unredact", inner.config.unredact.clone().into()),
            ("privateByDefault", inner.config.private_by_default.into()),
            ("onState", on_state.as_ref().clone()),
        ]);
        let id = tracked.id.clone();
        inner.sharing = Some(Sharing {
            session_id: id.clone(),
            handle: None,
            _on_state: on_state,
        });
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let started = start(&loader, &options).await;
            let Ok(mut inner) = this.0.try_borrow_mut() else {
                return stop(started);
            };
            let destroyed = inner.destroyed;
            match inner.sharing.as_mut() {
                Some(s) if s.session_id == id && s.handle.is_none() && !destroyed => {
                    match started {
                        Ok(handle) => s.handle = Some(handle),
                        Err(err) => {
                            web_sys::console::warn_2(
                                &"Agent Assist: co-browsing could not start:".into(),
                                &err,
                            );
                        }
                    }
                }
                // The session ended while the module loaded.
                _ => stop(started),
            }
        });
    }

    /// What the mirror says about this page: shared, or not.
    fn on_share_state(&self, state: String) {
        let Ok(inner) = self.0.try_borrow_mut() else {
            return;
        };
        let (Some(indicator), Some(tracked)) = (inner.indicator.as_ref(), inner.session.as_ref())
        else {
            return;
        };
        let agent = tracked.agent.as_deref().unwrap_or_default();
        let text = match state.as_str() {
            "not_shared" => Text::NotShared,
            "sharing" => Text::Sharing,
            _ => return,
        };
        indicator.set_text(&fill(inner.config.strings.get(text), agent));
    }
}

/// Loads the module (the loader's promise) and calls its `start(options)`.
async fn start(loader: &Function, options: &JsValue) -> Result<JsValue, JsValue> {
    let promise: Promise = loader.call0(&JsValue::NULL)?.dyn_into()?;
    let module = JsFuture::from(promise).await?;
    let start: Function = Reflect::get(&module, &JsValue::from_str("start"))?.dyn_into()?;
    start.call1(&module, options)
}

fn stop(started: Result<JsValue, JsValue>) {
    if let Ok(handle) = started {
        drop(Sharing {
            session_id: String::new(),
            handle: Some(handle),
            _on_state: Closure::new(|_: JsValue| {}),
        });
    }
}
