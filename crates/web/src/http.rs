//! `fetch` calls to the broker: JSON bodies, a bearer token, a time limit,
//! and the broker's JSON errors turned into [`FetchError`]s.
//!
//! JSON goes through the browser's own `JSON.stringify` / `Response.json()`
//! with `serde-wasm-bindgen` in between, so `serde_json` is not in the wasm.

use crate::js_de::from_js;
use agent_assist_protocol::{ApiError, ErrorCode};
use gloo_timers::callback::Timeout;
use serde::{de::DeserializeOwned, Serialize};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Request, RequestInit, Response};

/// How long a call may take before the user is told to try again: long
/// enough for a slow mobile network, short enough that nobody stares at a
/// placeholder wondering whether anything is happening.
pub const TIME_LIMIT_MS: u32 = 10_000;

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// `fetch` failed: the broker is down, unreachable, or refused CORS.
    Network,
    /// No answer within [`TIME_LIMIT_MS`].
    Timeout,
    /// The broker answered with an error.
    Api {
        code: ErrorCode,
        message: String,
        retry_after: Option<u32>,
    },
    /// The answer does not have the protocol's shape.
    BadResponse,
    /// A browser API threw unexpectedly.
    Js(String),
}

impl From<JsValue> for FetchError {
    fn from(value: JsValue) -> Self {
        let text = crate::js_message(&value);
        FetchError::Js(text)
    }
}

/// A broker at a base URL (no trailing slash).
#[derive(Clone, Debug)]
pub struct Http {
    base: String,
}

impl Http {
    pub fn new(base: String) -> Self {
        Http { base }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with an optional bearer token and JSON body; the answer
    /// read as `T`. The request is sent now, when `call` is called, not
    /// when the future is first polled: a caller that goes on to draw
    /// something (a dialog that takes focus makes the browser lay out the
    /// page) has its request already on the wire meanwhile.
    pub fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&B>,
    ) -> impl std::future::Future<Output = Result<T, FetchError>> + use<B, T> {
        // JSON-compatible: maps (e.g. an identity's `custom_data`) become
        // plain objects, which `JSON.stringify` writes out, not `Map`s, which
        // it would write as `{}`.
        let json = serde_wasm_bindgen::Serializer::json_compatible();
        let sent = match body.map(|b| b.serialize(&json)) {
            Some(Err(_)) => Err(FetchError::BadResponse),
            Some(Ok(body)) => self.send(method, path, token, Some(body)),
            None => self.send(method, path, token, None),
        };
        async move {
            let json = sent?.answer().await?;
            from_js(json).map_err(|_| FetchError::BadResponse)
        }
    }

    /// The untyped part of a call, kept out of the generic one so the wasm
    /// holds one copy of it rather than one per answer type: builds the
    /// request and hands it to `fetch`.
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<JsValue>,
    ) -> Result<Sent, FetchError> {
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
        let timed_out = Rc::new(Cell::new(false));
        let timer = {
            let timed_out = timed_out.clone();
            // Dropping the timer when the call finishes cancels it.
            Timeout::new(TIME_LIMIT_MS, move || {
                timed_out.set(true);
                abort.abort();
            })
        };

        let url = [self.base.as_str(), path].concat();
        let request = Request::new_with_str_and_init(&url, &init)?;
        let window = web_sys::window().ok_or(FetchError::Network)?;
        Ok(Sent {
            fetch: JsFuture::from(window.fetch_with_request(&request)),
            timed_out,
            _timer: timer,
        })
    }
}

/// A request handed to `fetch`, and what reading its answer needs.
struct Sent {
    fetch: JsFuture,
    timed_out: Rc<Cell<bool>>,
    _timer: Timeout,
}

impl Sent {
    /// The answer's JSON, or the broker's error.
    async fn answer(self) -> Result<JsValue, FetchError> {
        let timed_out = self.timed_out;
        let failed = |_| {
            if timed_out.get() {
                FetchError::Timeout
            } else {
                FetchError::Network
            }
        };
        let response: Response = self.fetch.await.map_err(failed)?.unchecked_into();
        let json = match JsFuture::from(response.json()?).await {
            Ok(json) => json,
            Err(_) if timed_out.get() => return Err(FetchError::Timeout),
            Err(_) => return Err(FetchError::BadResponse),
        };
        if response.ok() {
            return Ok(json);
        }
        let err: ApiError = from_js(json).map_err(|_| FetchError::BadResponse)?;
        Err(FetchError::Api {
            code: err.error,
            message: err.message,
            retry_after: err.retry_after,
        })
    }
}
