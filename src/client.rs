//! The broker client: `fetch` calls with JSON bodies, a time limit, and the
//! broker's JSON errors turned into [`Error`]s.
//!
//! JSON goes through the browser's own `JSON.stringify` / `Response.json()`
//! with `serde-wasm-bindgen` in between, so `serde_json` is not in the wasm.

use crate::error::{Error, Result};
use crate::js_de::from_js;
use agent_assist_protocol::{ApiError, CreateCodeRequest, CreateCodeResponse, SessionStatus};
use gloo_timers::callback::Timeout;
use serde::{de::DeserializeOwned, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Request, RequestInit, Response};

/// How long a call may take before the visitor is told to try again. Long
/// enough for a slow mobile network, short enough that nobody stares at a
/// placeholder wondering whether anything is happening.
const TIME_LIMIT_MS: u32 = 10_000;

#[derive(Clone, Debug)]
pub struct BrokerClient {
    base: String,
}

impl BrokerClient {
    pub fn new(base: String) -> Self {
        BrokerClient { base }
    }

    pub async fn create_code(&self, request: &CreateCodeRequest) -> Result<CreateCodeResponse> {
        self.call("POST", "/v1/codes", None, Some(request)).await
    }

    pub async fn cancel(&self, session_id: &str, device_token: &str) -> Result<SessionStatus> {
        let path = ["/v1/sessions/", session_id, "/cancel"].concat();
        self.call::<(), _>("POST", &path, Some(device_token), None)
            .await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> Result<T> {
        let body = match body {
            Some(b) => Some(serde_wasm_bindgen::to_value(b).map_err(|_| Error::BadResponse)?),
            None => None,
        };
        let json = self.fetch_json(method, path, token, body).await?;
        from_js(json).map_err(|_| Error::BadResponse)
    }

    /// The untyped part of a call, kept out of the generic one so the wasm
    /// holds one copy of it rather than one per answer type.
    async fn fetch_json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<JsValue>,
    ) -> Result<JsValue> {
        let init = RequestInit::new();
        init.set_method(method);
        init.set_mode(web_sys::RequestMode::Cors);
        init.set_credentials(web_sys::RequestCredentials::Omit);
        let headers = web_sys::Headers::new()?;
        if let Some(body) = body {
            let json = js_sys::JSON::stringify(&body)?;
            headers.set("content-type", "application/json")?;
            init.set_body(&json);
        }
        if let Some(token) = token {
            headers.set("authorization", &["Bearer ", token].concat())?;
        }
        init.set_headers(&headers);

        let abort = AbortController::new()?;
        init.set_signal(Some(&abort.signal()));
        let timed_out = std::rc::Rc::new(std::cell::Cell::new(false));
        let _timer = {
            let (abort, timed_out) = (abort.clone(), timed_out.clone());
            // Dropping `_timer` when the call finishes cancels it.
            Timeout::new(TIME_LIMIT_MS, move || {
                timed_out.set(true);
                abort.abort();
            })
        };

        let url = [self.base.as_str(), path].concat();
        let request = Request::new_with_str_and_init(&url, &init)?;
        let window = web_sys::window().ok_or(Error::NoDocument)?;
        let failed = |_| {
            if timed_out.get() {
                Error::Timeout
            } else {
                Error::Network
            }
        };
        let response: Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(failed)?
            .unchecked_into();
        let json = match JsFuture::from(response.json()?).await {
            Ok(json) => json,
            Err(_) if timed_out.get() => return Err(Error::Timeout),
            Err(_) => return Err(Error::BadResponse),
        };
        if response.ok() {
            return Ok(json);
        }
        let err: ApiError = from_js(json).map_err(|_| Error::BadResponse)?;
        Err(Error::Api {
            code: err.error,
            message: err.message,
        })
    }
}
