//! The broker's HTTP API as the widget and curl see it: a real server on a
//! random port, a temporary SQLite file, and a clock the tests move.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_assist_broker::clock::Clock;
use agent_assist_protocol::{
    is_valid_code, CreateCodeResponse, EndReason, ErrorCode, SessionState, SessionStatus,
};
use common::{assert_refused, Broker, DEMO_ORIGIN, EVIL_ORIGIN, SHORT_ORIGIN};
use reqwest::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_TYPE, LAST_MODIFIED, ORIGIN, VARY,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_check_answers() {
    let broker = Broker::start().await;
    let res = broker
        .client
        .get(broker.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "ok": true }));
}

#[tokio::test]
async fn a_code_is_created_followed_and_cancelled() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    assert!(is_valid_code(&created.code), "{}", created.code);
    assert_eq!(created.session_id.len(), 32);
    assert_eq!(
        broker.live("demo", &created.code).await,
        Some(created.session_id.clone())
    );

    let status = broker
        .status(&created.session_id, &created.device_token)
        .await;
    assert_eq!(
        status,
        SessionStatus {
            session_id: created.session_id.clone(),
            state: SessionState::Pending,
            end_reason: None,
            expires_at: created.expires_at,
            agent: None,
            consent_expires_at: None,
        }
    );

    let res = broker
        .post_cancel(&created.session_id, &created.device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cancelled: SessionStatus = res.json().await.unwrap();
    assert_eq!(cancelled.state, SessionState::Ended);
    assert_eq!(cancelled.end_reason, Some(EndReason::DeviceCancelled));
    assert_eq!(broker.live("demo", &created.code).await, None);

    // Cancelling again is harmless and reports the same outcome.
    let res = broker
        .post_cancel(&created.session_id, &created.device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let again: SessionStatus = res.json().await.unwrap();
    assert_eq!(again, cancelled);
    assert_eq!(
        broker
            .status(&created.session_id, &created.device_token)
            .await,
        cancelled
    );
    assert_eq!(broker.count_sessions().await, 1);
}

#[tokio::test]
async fn ten_thousand_codes_for_one_site_are_distinct_and_live() {
    const CODES: usize = 10_000;
    const IN_FLIGHT: usize = 32;
    let broker = Arc::new(Broker::start().await);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (broker, next) = (Arc::clone(&broker), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < CODES {
                mine.push(broker.create("demo").await);
            }
            mine
        }));
    }
    let mut created: Vec<CreateCodeResponse> = Vec::with_capacity(CODES);
    for worker in workers {
        created.extend(worker.await.unwrap());
    }
    assert_eq!(created.len(), CODES);

    let codes: HashSet<&str> = created.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), CODES, "every live code is different");
    assert!(created.iter().all(|c| is_valid_code(&c.code)));
    let sessions: HashSet<&str> = created.iter().map(|c| c.session_id.as_str()).collect();
    assert_eq!(sessions.len(), CODES);

    let now = broker.clock.now_ms();
    assert_eq!(
        broker
            .state
            .store
            .count_live_codes("demo", now)
            .await
            .unwrap(),
        CODES as u64
    );
    for c in created.iter().step_by(97) {
        assert_eq!(
            broker.live("demo", &c.code).await.as_deref(),
            Some(c.session_id.as_str())
        );
    }
}

#[tokio::test]
async fn codes_expire_after_their_sites_lifetime() {
    let broker = Broker::start().await;
    let t0 = broker.clock.now_ms();
    let demo = broker.create("demo").await;
    let short = broker.create("short").await;
    assert_eq!(demo.expires_in, 1200);
    assert_eq!(demo.expires_at, t0 + 1_200_000);
    assert_eq!(short.expires_in, 60);
    assert_eq!(short.expires_at, t0 + 60_000);

    // One millisecond before the end the short code still works.
    broker.clock.advance(Duration::from_millis(59_999));
    assert_eq!(
        broker
            .status(&short.session_id, &short.device_token)
            .await
            .state,
        SessionState::Pending
    );
    assert!(broker.live("short", &short.code).await.is_some());

    broker.clock.advance(Duration::from_millis(1));
    let ended = broker.status(&short.session_id, &short.device_token).await;
    assert_eq!(ended.state, SessionState::Ended);
    assert_eq!(ended.end_reason, Some(EndReason::PendingTimeout));
    assert_eq!(broker.live("short", &short.code).await, None);
    // The default 20-minute site is unaffected.
    assert_eq!(
        broker
            .status(&demo.session_id, &demo.device_token)
            .await
            .state,
        SessionState::Pending
    );
    assert!(broker.live("demo", &demo.code).await.is_some());

    broker.clock.advance(Duration::from_secs(1200));
    let ended = broker.status(&demo.session_id, &demo.device_token).await;
    assert_eq!(ended.state, SessionState::Ended);
    assert_eq!(ended.end_reason, Some(EndReason::PendingTimeout));
    assert_eq!(broker.live("demo", &demo.code).await, None);

    // Cancelling an expired code changes nothing: it is already over.
    let res = broker
        .post_cancel(&demo.session_id, &demo.device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let after: SessionStatus = res.json().await.unwrap();
    assert_eq!(after.end_reason, Some(EndReason::PendingTimeout));
}

#[tokio::test]
async fn expired_codes_are_swept_without_being_read() {
    let broker = Broker::start().await;
    let short = broker.create("short").await;
    broker.clock.advance(Duration::from_secs(61));
    let now = broker.clock.now_ms();
    assert_eq!(
        broker.state.store.sweep_expired(now).await.unwrap().len(),
        1
    );
    assert_eq!(
        broker
            .state
            .store
            .count_live_codes("short", now)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        broker
            .status(&short.session_id, &short.device_token)
            .await
            .end_reason,
        Some(EndReason::PendingTimeout)
    );
}

#[tokio::test]
async fn a_restarted_broker_keeps_codes_sessions_and_tokens() {
    let broker = Broker::start().await;
    let (db, clock) = (broker.db.clone(), Arc::clone(&broker.clock));
    let kept: Vec<CreateCodeResponse> = vec![
        broker.create("demo").await,
        broker.create("demo").await,
        broker.create("short").await,
    ];
    let gone = broker.create("demo").await;
    let res = broker
        .post_cancel(&gone.session_id, &gone.device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let secret_before = broker.code_secret();
    assert_eq!(secret_before.len(), 32);
    let dir = broker.stop().await;

    let broker = Broker::start_on(&db, clock, |s| s).await;
    for c in &kept {
        let site = if c.expires_in == 60 { "short" } else { "demo" };
        let status = broker.status(&c.session_id, &c.device_token).await;
        assert_eq!(status.state, SessionState::Pending);
        assert_eq!(status.expires_at, c.expires_at);
        assert_eq!(
            broker.live(site, &c.code).await.as_deref(),
            Some(c.session_id.as_str())
        );
    }
    let status = broker.status(&gone.session_id, &gone.device_token).await;
    assert_eq!(status.end_reason, Some(EndReason::DeviceCancelled));
    assert_eq!(broker.live("demo", &gone.code).await, None);
    assert_eq!(broker.count_sessions().await, 4);
    assert_eq!(
        broker.code_secret(),
        secret_before,
        "the HMAC secret persisted"
    );

    // A token from before the restart still works for cancelling.
    let res = broker
        .post_cancel(&kept[0].session_id, &kept[0].device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    broker.stop().await;
    drop(dir);
}

/// What a bad request must not change: how many sessions there are and
/// where an existing session stands.
struct Snapshot {
    sessions: u64,
    status: SessionStatus,
    live: Option<String>,
}

async fn snapshot(broker: &Broker, existing: &CreateCodeResponse) -> Snapshot {
    Snapshot {
        sessions: broker.count_sessions().await,
        status: broker
            .status(&existing.session_id, &existing.device_token)
            .await,
        live: broker.live("demo", &existing.code).await,
    }
}

async fn assert_unchanged(broker: &Broker, existing: &CreateCodeResponse, before: &Snapshot) {
    let after = snapshot(broker, existing).await;
    assert_eq!(after.sessions, before.sessions, "session count changed");
    assert_eq!(after.status, before.status, "session changed");
    assert_eq!(after.live, before.live, "code liveness changed");
}

#[tokio::test]
async fn bad_code_requests_are_refused_and_change_nothing() {
    let broker = Broker::start().await;
    let existing = broker.create("demo").await;
    let before = snapshot(&broker, &existing).await;
    let post = |body: String, content_type: Option<&str>| {
        let mut req = broker.client.post(broker.url("/v1/codes")).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req.send()
    };
    let json = Some("application/json");
    let long = "x".repeat(201);

    let cases: Vec<(&str, String, Option<&str>, ErrorCode)> = vec![
        (
            "malformed JSON",
            r#"{"site_key": "demo""#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "not JSON at all",
            "site_key=demo".into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "wrong shape",
            r#"{"site_key": 5}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "an array",
            r#"["demo"]"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            // Found by the schemathesis run: serde reads a struct from an
            // array, and this one used to make a code.
            "an array for the visitor",
            r#"{"site_key": "demo", "visitor": [null, null]}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "an array for the identity",
            r#"{"site_key": "demo", "identity": ["u-1", null, null, null, "t"]}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "missing field",
            r#"{"visitor": {}}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "unknown field",
            r#"{"site_key": "demo", "colour": "red"}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "unknown visitor field",
            r#"{"site_key": "demo", "visitor": {"phone": "1"}}"#.into(),
            json,
            ErrorCode::MalformedJson,
        ),
        (
            "wrong content type",
            r#"{"site_key": "demo"}"#.into(),
            Some("text/plain"),
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "no content type",
            r#"{"site_key": "demo"}"#.into(),
            None,
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "oversized body",
            json!({ "site_key": "demo", "visitor": { "name": "x".repeat(17 * 1024) } }).to_string(),
            json,
            ErrorCode::PayloadTooLarge,
        ),
        (
            "unknown site",
            r#"{"site_key": "nope"}"#.into(),
            json,
            ErrorCode::UnknownSite,
        ),
        (
            "empty site key",
            r#"{"site_key": ""}"#.into(),
            json,
            ErrorCode::UnknownSite,
        ),
        (
            "over-long visitor name",
            json!({ "site_key": "demo", "visitor": { "name": long } }).to_string(),
            json,
            ErrorCode::InvalidField,
        ),
        (
            "over-long visitor email",
            json!({ "site_key": "demo", "visitor": { "email": long } }).to_string(),
            json,
            ErrorCode::InvalidField,
        ),
    ];
    for (what, body, content_type, code) in cases {
        eprintln!("case: {what}");
        let res = post(body, content_type).await.unwrap();
        let message = assert_refused(res, code).await;
        if what == "an array for the visitor" {
            assert!(message.contains("visitor: an array"), "{message}");
        }
        if what == "over-long visitor name" {
            assert!(message.contains("visitor.name"), "{message}");
        }
        if what == "over-long visitor email" {
            assert!(message.contains("visitor.email"), "{message}");
        }
        if what == "unknown field" {
            assert!(message.contains("colour"), "{message}");
        }
        assert_unchanged(&broker, &existing, &before).await;
    }

    // The limit is in characters, not bytes: 200 two-byte letters are fine.
    let ok =
        json!({ "site_key": "demo", "visitor": { "name": "é".repeat(200), "email": "a@b.c" } });
    let res = post(ok.to_string(), json).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_session_requests_are_refused_and_change_nothing() {
    let broker = Broker::start().await;
    let existing = broker.create("demo").await;
    let other = broker.create("demo").await;
    let before = snapshot(&broker, &existing).await;
    let id = existing.session_id.as_str();
    let get = format!("/v1/sessions/{id}");
    let cancel = format!("/v1/sessions/{id}/cancel");
    let wrong_token = "0123456789abcdef".repeat(4);
    let unknown_id = "0123456789abcdef0123456789abcdef";

    for path in [&get, &cancel] {
        let method = if path == &get {
            Method::GET
        } else {
            Method::POST
        };
        let req = || broker.client.request(method.clone(), broker.url(path));

        // Missing, malformed and wrong tokens.
        assert_refused(req().send().await.unwrap(), ErrorCode::InvalidToken).await;
        let res = req()
            .header("authorization", "Bearer")
            .send()
            .await
            .unwrap();
        assert_refused(res, ErrorCode::InvalidToken).await;
        let res = req()
            .header("authorization", format!("Basic {}", existing.device_token))
            .send()
            .await
            .unwrap();
        assert_refused(res, ErrorCode::InvalidToken).await;
        let res = req().bearer_auth("not-a-token").send().await.unwrap();
        assert_refused(res, ErrorCode::InvalidToken).await;
        let res = req().bearer_auth(&wrong_token).send().await.unwrap();
        assert_refused(res, ErrorCode::InvalidToken).await;
        // A device token works only for its own session.
        let res = req().bearer_auth(&other.device_token).send().await.unwrap();
        assert_refused(res, ErrorCode::InvalidToken).await;
        // A page of an origin the site does not allow, even with the token.
        let res = req()
            .bearer_auth(&existing.device_token)
            .header(ORIGIN, EVIL_ORIGIN)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_refused(res, ErrorCode::OriginNotAllowed).await;
        // An origin allowed for another site is still not allowed for this one.
        let res = req()
            .bearer_auth(&existing.device_token)
            .header(ORIGIN, SHORT_ORIGIN)
            .send()
            .await
            .unwrap();
        assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_refused(res, ErrorCode::OriginNotAllowed).await;
        assert_unchanged(&broker, &existing, &before).await;
    }

    // Unknown and malformed session ids, with a token or without one.
    for id in [unknown_id, "nope", "0123456789ABCDEF0123456789ABCDEF"] {
        let res = broker.get_status(id, &existing.device_token).await;
        assert_refused(res, ErrorCode::UnknownSession).await;
        let res = broker.post_cancel(id, &existing.device_token).await;
        assert_refused(res, ErrorCode::UnknownSession).await;
        let res = broker
            .client
            .get(broker.url(&format!("/v1/sessions/{id}")))
            .send()
            .await
            .unwrap();
        assert_refused(res, ErrorCode::UnknownSession).await;
    }
    assert_unchanged(&broker, &existing, &before).await;
    assert_eq!(
        broker
            .status(&other.session_id, &other.device_token)
            .await
            .state,
        SessionState::Pending
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_json_errors() {
    let broker = Broker::start().await;
    let existing = broker.create("demo").await;
    let before = snapshot(&broker, &existing).await;
    let id = &existing.session_id;

    for (method, path, code) in [
        (Method::GET, "/v1/nope".to_owned(), ErrorCode::NotFound),
        (Method::POST, "/v1/nope".to_owned(), ErrorCode::NotFound),
        (
            Method::GET,
            format!("/v1/sessions/{id}/nope"),
            ErrorCode::NotFound,
        ),
        (Method::GET, "/nope".to_owned(), ErrorCode::NotFound),
        (Method::GET, "/".to_owned(), ErrorCode::NotFound),
        (
            Method::GET,
            "/v1/codes".to_owned(),
            ErrorCode::MethodNotAllowed,
        ),
        (
            Method::PUT,
            "/v1/codes".to_owned(),
            ErrorCode::MethodNotAllowed,
        ),
        (
            Method::DELETE,
            format!("/v1/sessions/{id}"),
            ErrorCode::MethodNotAllowed,
        ),
        (
            Method::GET,
            format!("/v1/sessions/{id}/cancel"),
            ErrorCode::MethodNotAllowed,
        ),
        (
            Method::POST,
            "/healthz".to_owned(),
            ErrorCode::MethodNotAllowed,
        ),
    ] {
        let res = broker
            .client
            .request(method.clone(), broker.url(&path))
            .bearer_auth(&existing.device_token)
            .send()
            .await
            .unwrap();
        assert_refused(res, code).await;
    }
    assert_unchanged(&broker, &existing, &before).await;
}

#[tokio::test]
async fn a_disallowed_origin_cannot_create_a_code() {
    let broker = Broker::start().await;
    let existing = broker.create("demo").await;
    let before = snapshot(&broker, &existing).await;
    for origin in [EVIL_ORIGIN, SHORT_ORIGIN, "null"] {
        let res = broker
            .client
            .post(broker.url("/v1/codes"))
            .header(ORIGIN, origin)
            .json(&json!({ "site_key": "demo" }))
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{origin}"
        );
        assert_refused(res, ErrorCode::OriginNotAllowed).await;
        assert_unchanged(&broker, &existing, &before).await;
    }
}

#[tokio::test]
async fn an_active_session_cannot_be_cancelled() {
    let broker = Broker::start().await;
    let (created, _, _) = broker.authorizing("demo").await;
    let res = broker
        .post_consent(&created.session_id, &created.device_token, true)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    let res = broker
        .post_cancel(&created.session_id, &created.device_token)
        .await;
    assert_refused(res, ErrorCode::InvalidState).await;
    let status = broker
        .status(&created.session_id, &created.device_token)
        .await;
    assert_eq!(
        (status.state, status.end_reason),
        (SessionState::Active, None)
    );
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_gets_the_cors_headers() {
    let broker = Broker::start().await;
    for path in [
        "/v1/codes",
        "/v1/sessions/0123456789abcdef0123456789abcdef/cancel",
        "/v1/sessions/0123456789abcdef0123456789abcdef/events",
        "/v1/agent/redeem",
    ] {
        let res = broker
            .client
            .request(Method::OPTIONS, broker.url(path))
            .header(ORIGIN, DEMO_ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let h = res.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], DEMO_ORIGIN);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST");
        assert_eq!(
            h[ACCESS_CONTROL_ALLOW_HEADERS],
            "authorization, content-type, last-event-id"
        );
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[VARY], "Origin");
    }
}

#[tokio::test]
async fn preflight_from_another_origin_is_refused() {
    let broker = Broker::start().await;
    for origin in [Some(EVIL_ORIGIN), Some("http://localhost:8081"), None] {
        let mut req = broker
            .client
            .request(Method::OPTIONS, broker.url("/v1/codes"))
            .header("access-control-request-method", "POST");
        if let Some(origin) = origin {
            req = req.header(ORIGIN, origin);
        }
        let res = req.send().await.unwrap();
        assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(res.headers().get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
        assert_refused(res, ErrorCode::OriginNotAllowed).await;
    }
    assert_eq!(broker.count_sessions().await, 0);
}

#[tokio::test]
async fn answers_to_an_allowed_origin_carry_cors_headers() {
    let broker = Broker::start().await;
    let res = broker
        .client
        .post(broker.url("/v1/codes"))
        .header(ORIGIN, DEMO_ORIGIN)
        .json(&json!({ "site_key": "demo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], DEMO_ORIGIN);
    assert_eq!(res.headers()[VARY], "Origin");
    let created: CreateCodeResponse = res.json().await.unwrap();

    let res = broker
        .client
        .get(broker.url(&format!("/v1/sessions/{}", created.session_id)))
        .header(ORIGIN, DEMO_ORIGIN)
        .bearer_auth(&created.device_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], DEMO_ORIGIN);

    // Error answers too, so the widget can read why.
    let res = broker
        .client
        .post(broker.url("/v1/codes"))
        .header(ORIGIN, DEMO_ORIGIN)
        .json(&json!({ "site_key": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], DEMO_ORIGIN);
    assert_refused(res, ErrorCode::UnknownSite).await;

    // Another site's origin works for that site.
    let res = broker
        .client
        .post(broker.url("/v1/codes"))
        .header(ORIGIN, SHORT_ORIGIN)
        .json(&json!({ "site_key": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], SHORT_ORIGIN);
}

/// A site's script tag loads the bundle from the broker's origin, not the
/// site's: the wasm comes through `fetch` and the modules through
/// `import()`, which the browser hands to the page only with CORS. The
/// bundle goes gzipped to browsers that take it (from the copies `cargo
/// xtask build` writes), and is revalidated before reuse.
#[tokio::test]
async fn the_sdk_bundle_is_readable_from_any_origin_and_sent_gzipped() {
    let files = tempfile::tempdir().unwrap();
    let sdk = files.path().join("sdk");
    std::fs::create_dir_all(sdk.join("widget")).unwrap();
    let wasm = b"\0asm\x01\0\0\0 the boot module".to_vec();
    let gzipped = b"\x1f\x8b pretend gzip".to_vec();
    std::fs::write(sdk.join("agent-assist_bg.wasm"), &wasm).unwrap();
    std::fs::write(sdk.join("agent-assist_bg.wasm.gz"), &gzipped).unwrap();
    std::fs::write(sdk.join("widget/agent_assist_widget.js"), "export {}").unwrap();

    let db = files.path().join("broker.sqlite3");
    let clock = Arc::new(agent_assist_broker::clock::ManualClock::starting_now());
    let broker = Broker::start_on(&db, clock, |s| s.with_sdk(&sdk)).await;
    let get = |path: &str, gzip: bool| {
        let req = broker
            .client
            .get(broker.url(path))
            .header(ORIGIN, "https://any-customer-site.example");
        if gzip {
            req.header(ACCEPT_ENCODING, "gzip, deflate, br")
        } else {
            req
        }
        .send()
    };

    for path in [
        "/sdk/agent-assist_bg.wasm",
        "/sdk/widget/agent_assist_widget.js",
    ] {
        let res = get(path, false).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*", "{path}");
        assert_eq!(
            res.headers()["cross-origin-resource-policy"],
            "cross-origin"
        );
        assert_eq!(res.headers()[CACHE_CONTROL], "no-cache", "{path}");
        assert!(res.headers().contains_key(LAST_MODIFIED), "{path}");
    }
    let plain = get("/sdk/agent-assist_bg.wasm", false).await.unwrap();
    assert!(plain.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(plain.bytes().await.unwrap().as_ref(), &wasm[..]);

    let packed = get("/sdk/agent-assist_bg.wasm", true).await.unwrap();
    assert_eq!(packed.headers()[CONTENT_ENCODING], "gzip");
    assert_eq!(packed.headers()[CONTENT_TYPE], "application/wasm");
    assert!(packed.headers()[VARY]
        .to_str()
        .unwrap()
        .contains("accept-encoding"));
    assert_eq!(packed.bytes().await.unwrap().as_ref(), &gzipped[..]);

    // No gzip copy: the file itself, to a browser that would take gzip.
    let js = get("/sdk/widget/agent_assist_widget.js", true)
        .await
        .unwrap();
    assert!(js.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(js.text().await.unwrap(), "export {}");

    let missing = get("/sdk/missing.js", false).await.unwrap();
    assert_refused(missing, ErrorCode::NotFound).await;
}

#[tokio::test]
async fn static_pages_and_the_sdk_bundle_are_served() {
    let files = tempfile::tempdir().unwrap();
    let www = files.path().join("www");
    let sdk = files.path().join("sdk");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::create_dir_all(&sdk).unwrap();
    std::fs::write(www.join("index.html"), "<h1>Demo Shop</h1>").unwrap();
    std::fs::write(www.join("support.html"), "<h1>Support</h1>").unwrap();
    std::fs::write(sdk.join("agent-assist.js"), "export {}").unwrap();
    std::fs::write(sdk.join("agent_assist_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();

    let db = files.path().join("broker.sqlite3");
    let clock = Arc::new(agent_assist_broker::clock::ManualClock::starting_now());
    let broker = Broker::start_on(&db, clock, |s| s.with_www(&www).with_sdk(&sdk)).await;
    let get = |path: &str| broker.client.get(broker.url(path)).send();

    let res = get("/").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(res.text().await.unwrap(), "<h1>Demo Shop</h1>");
    assert_eq!(
        get("/support.html").await.unwrap().text().await.unwrap(),
        "<h1>Support</h1>"
    );

    let res = get("/sdk/agent_assist_bg.wasm").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/wasm");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"\0asm\x01\0\0\0");
    let res = get("/sdk/agent-assist.js").await.unwrap();
    assert!(res.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("javascript"));

    assert_refused(get("/missing.html").await.unwrap(), ErrorCode::NotFound).await;
    assert_refused(get("/sdk/missing.js").await.unwrap(), ErrorCode::NotFound).await;
    assert_refused(get("/v1/nope").await.unwrap(), ErrorCode::NotFound).await;
    let res = broker
        .client
        .post(broker.url("/index.html"))
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::MethodNotAllowed).await;
    // The API is still there.
    broker.create("demo").await;
    broker.stop().await;
}
