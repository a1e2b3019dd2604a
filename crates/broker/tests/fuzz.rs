//! Property-based fuzzing of the API's request decoders, over real HTTP:
//! any method-and-route of the API, with any body (arbitrary bytes, invalid
//! UTF-8, or JSON built from the API's own field names with hostile
//! values: HTML, control characters, huge and negative numbers, deep
//! nesting), any content type, any credential, any `Origin`, any
//! `Last-Event-ID`. Whatever comes in:
//!
//! - the broker never answers 5xx, and stays up;
//! - every refusal is a JSON error whose code matches its status;
//! - a refusal changes nothing in the store.
//!
//! `cargo xtask test` runs a bounded number of cases (300);
//! `cargo xtask fuzz` runs many more (`AGENT_ASSIST_FUZZ_CASES`).

mod common;

use agent_assist_protocol::{ApiError, CreateCodeResponse, SessionStatus};
use common::{Broker, DEMO_ORIGIN, EVIL_ORIGIN};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::header::{CONTENT_TYPE, ORIGIN};
use reqwest::Method;

/// How many cases to run: `AGENT_ASSIST_FUZZ_CASES`, or 300.
fn cases() -> u32 {
    std::env::var("AGENT_ASSIST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// The routes, with `{S}` for a session id and `{T}` for a ticket.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/codes"),
    ("POST", "/v1/agent/redeem"),
    ("GET", "/v1/agent/me"),
    ("GET", "/v1/sessions/{S}"),
    ("POST", "/v1/sessions/{S}/cancel"),
    ("POST", "/v1/sessions/{S}/consent"),
    ("POST", "/v1/sessions/{S}/end"),
    ("POST", "/v1/sessions/{S}/ticket"),
    ("GET", "/v1/sessions/{S}/visitor"),
    (
        "GET",
        "/v1/sessions/{S}/events?ticket={T}&last_event_id={N}",
    ),
    ("PUT", "/v1/codes"),
    ("DELETE", "/v1/sessions/{S}"),
];

/// Field names the API's bodies use (and a few it does not).
const KEYS: &[&str] = &[
    "site_key",
    "visitor",
    "visitor_id",
    "name",
    "email",
    "identity",
    "token",
    "user_id",
    "custom_data",
    "code",
    "allow",
    "locale",
    "__proto__",
    "",
];

/// Strings that have broken parsers, escapers and databases before.
const NASTY: &[&str] = &[
    "demo",
    "limited",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "'; DROP TABLE sessions; --",
    "\u{0}",
    "\u{202e}evil",
    "𝕏𝕏𝕏",
    "123456",
    "000000",
    "9999999",
    "../../etc/passwd",
    "%00",
    "a@b.c",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(NASTY).prop_map(|s| Value::String(s.to_owned())),
        ".{0,40}".prop_map(Value::String),
        (1usize..400).prop_map(|n| Value::String("x".repeat(n))),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(KEYS).prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Bytes(Vec<u8>),
    Json(serde_json::Value),
    /// Valid JSON text with a byte of invalid UTF-8 inside a string.
    BrokenUtf8(String),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        Just(Body::None),
        prop::collection::vec(any::<u8>(), 0..600).prop_map(Body::Bytes),
        json_value().prop_map(Body::Json),
        // Objects built from the API's field names, the likeliest to reach
        // the decoders' deeper checks.
        prop::collection::btree_map(
            prop::sample::select(KEYS).prop_map(str::to_owned),
            json_value(),
            0..5
        )
        .prop_map(|m| Body::Json(serde_json::Value::Object(m.into_iter().collect()))),
        prop::sample::select(NASTY).prop_map(|s| Body::BrokenUtf8(s.to_owned())),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    Device,
    Agent,
    Garbage,
}

#[derive(Debug, Clone)]
struct Case {
    route: usize,
    real_session: bool,
    session: String,
    number: String,
    who: Who,
    garbage_credential: String,
    body: Body,
    content_type: Option<&'static str>,
    origin: Option<&'static str>,
    last_event_id: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        // The body-reading routes (codes, redeem, consent) most often.
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 2 => Just(5usize), 3 => 0..ROUTES.len()],
        prop::bool::weighted(0.8),
        prop_oneof![
            ".{0,30}",
            prop::sample::select(NASTY).prop_map(str::to_owned)
        ],
        prop_oneof![
            Just("-1".to_owned()),
            Just("99999999999999999999999".to_owned()),
            Just("1e30".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            ".{0,10}",
        ],
        prop_oneof![
            1 => Just(Who::Nobody),
            3 => Just(Who::Device),
            3 => Just(Who::Agent),
            1 => Just(Who::Garbage),
        ],
        "[ -~]{0,80}",
        body(),
        prop_oneof![
            8 => Just(Some("application/json")),
            1 => Just(Some("application/json; charset=utf-8")),
            1 => Just(Some("text/plain")),
            1 => Just(None),
        ],
        prop_oneof![
            6 => Just(None),
            3 => Just(Some(DEMO_ORIGIN)),
            1 => Just(Some(EVIL_ORIGIN)),
            1 => Just(Some("null")),
        ],
        prop::option::of(prop_oneof![
            Just("-1".to_owned()),
            Just("18446744073709551616".to_owned()),
            "[ -~]{0,20}",
        ]),
    )
        .prop_map(
            |(
                route,
                real_session,
                session,
                number,
                who,
                garbage_credential,
                body,
                content_type,
                origin,
                last_event_id,
            )| Case {
                route,
                real_session,
                session,
                number,
                who,
                garbage_credential,
                body,
                content_type,
                origin,
                last_event_id,
            },
        )
}

/// What a refusal must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    sessions: u64,
    status: SessionStatus,
}

struct World {
    /// Answers seen, by status, for the closing line.
    statuses: std::collections::BTreeMap<u16, u32>,
    broker: Broker,
    session: CreateCodeResponse,
    agent_token: String,
}

impl World {
    async fn snapshot(&self) -> Snapshot {
        Snapshot {
            sessions: self.broker.count_sessions().await,
            status: self
                .broker
                .status(&self.session.session_id, &self.session.device_token)
                .await,
        }
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn run_case(world: &mut World, case: &Case) -> Result<(), TestCaseError> {
    let (method, template) = ROUTES[case.route];
    let session = if case.real_session {
        world.session.session_id.clone()
    } else {
        percent(&case.session)
    };
    let path = template
        .replace("{S}", &session)
        .replace("{T}", &percent(&case.garbage_credential))
        .replace("{N}", &percent(&case.number));
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = world.broker.client.request(method, world.broker.url(&path));
    req = match case.who {
        Who::Nobody => req,
        Who::Device => req.bearer_auth(&world.session.device_token),
        Who::Agent => req.bearer_auth(&world.agent_token),
        // Header values must be visible ASCII; the strategy makes them so.
        Who::Garbage => req.header("authorization", case.garbage_credential.trim()),
    };
    if let Some(ct) = case.content_type {
        req = req.header(CONTENT_TYPE, ct);
    }
    if let Some(origin) = case.origin {
        req = req.header(ORIGIN, origin);
    }
    if let Some(id) = &case.last_event_id {
        req = req.header("last-event-id", id.trim());
    }
    req = match &case.body {
        Body::None => req,
        Body::Bytes(b) => req.body(b.clone()),
        Body::Json(v) => req.body(v.to_string()),
        Body::BrokenUtf8(s) => {
            let mut bytes = format!("{{\"site_key\": \"{s}").into_bytes();
            bytes.extend_from_slice(&[0xff, 0xfe]);
            bytes.extend_from_slice(b"\"}");
            req.body(bytes)
        }
    };

    let before = world.snapshot().await;
    let res = req
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = res.status();
    *world.statuses.entry(status.as_u16()).or_default() += 1;
    prop_assert!(
        !status.is_server_error(),
        "{status} for {case:?}: {}",
        res.text().await.unwrap_or_default()
    );
    if status.is_success() {
        // A request that happened to be valid: drop the stream if it is
        // one, and start the next case from a fresh session.
        drop(res);
        world.session = world.broker.create("demo").await;
        return Ok(());
    }
    let text = res.text().await.unwrap_or_default();
    let error: ApiError = serde_json::from_str(&text)
        .map_err(|e| TestCaseError::fail(format!("{status} not a JSON error ({e}): {text:?}")))?;
    prop_assert_eq!(u16::from(status), error.error.status(), "{}", text);
    prop_assert_eq!(
        world.snapshot().await,
        before,
        "a refusal changed the store"
    );
    Ok(())
}

#[test]
fn no_request_makes_the_broker_fail_or_a_refusal_change_anything() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut world = rt.block_on(async {
        let broker = Broker::start().await;
        let session = broker.create("demo").await;
        let (_, agent_token) = broker.add_agent("demo", "Fuzz").await;
        World {
            statuses: std::collections::BTreeMap::new(),
            broker,
            session,
            agent_token,
        }
    });
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let world = std::cell::RefCell::new(&mut world);
    let result = runner.run(&case(), |case| {
        rt.block_on(run_case(&mut world.borrow_mut(), &case))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Still serving.
    let world = world.into_inner();
    eprintln!("answers by status: {:?}", world.statuses);
    rt.block_on(world.broker.create("demo"));
}
