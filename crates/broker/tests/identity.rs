//! Who the visitor is, through the API: each site's auth mode enforced on
//! code requests, signed identities, the visitor and their tickets as the
//! agent sees them, merging an anonymous visitor's tickets after sign-in
//! (also under concurrent requests), and the demo login.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use agent_assist_broker::clock::Clock;
use agent_assist_broker::jwt;
use agent_assist_protocol::{
    CreateCodeResponse, EndReason, ErrorCode, IdentityKind, SessionState, VisitorView,
    MAX_CUSTOM_FIELDS, MAX_CUSTOM_KEY, MAX_TEXT_FIELD,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{assert_refused, forge, Broker, DEMO_SECRET, LOGIN_SECRET};
use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// The anonymous id a widget made on its first click.
const VISITOR: &str = "0123456789abcdef0123456789abcdef";

async fn post_code(broker: &Broker, body: &Value) -> Response {
    broker
        .client
        .post(broker.url("/v1/codes"))
        .json(body)
        .send()
        .await
        .expect("request")
}

/// `POST /v1/codes`, expecting a code.
async fn code(broker: &Broker, body: Value) -> CreateCodeResponse {
    let res = post_code(broker, &body).await;
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The claims of the demo user Alex, valid for ten minutes.
fn alex_claims(broker: &Broker) -> Value {
    json!({
        "sub": "u-1001", "name": "Alex Martin", "email": "alex@example.com",
        "custom": { "plan": "Gold", "orders": "12" },
        "exp": broker.clock.now_ms() / 1000 + 600,
    })
}

/// A code request body for `site` with Alex's identity signed by `secret`,
/// and `visitor_id` if given.
fn alex(broker: &Broker, site: &str, secret: &str, visitor_id: Option<&str>) -> Value {
    let token = jwt::encode(&alex_claims(broker), secret.as_bytes());
    identity_body(site, token, visitor_id)
}

fn identity_body(site: &str, token: String, visitor_id: Option<&str>) -> Value {
    let mut body = json!({
        "site_key": site,
        "identity": {
            "user_id": "u-1001", "name": "Alex Martin", "email": "alex@example.com",
            "custom_data": { "plan": "Gold", "orders": "12" },
            "token": token,
        }
    });
    if let Some(id) = visitor_id {
        body["visitor_id"] = json!(id);
    }
    body
}

async fn get_visitor(broker: &Broker, session_id: &str, credential: &str) -> Response {
    broker
        .client
        .get(broker.url(&format!("/v1/sessions/{session_id}/visitor")))
        .bearer_auth(credential)
        .send()
        .await
        .expect("request")
}

/// `GET /v1/sessions/{id}/visitor`, expecting success.
async fn visitor(broker: &Broker, session_id: &str, credential: &str) -> VisitorView {
    let res = get_visitor(broker, session_id, credential).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("VisitorView body")
}

/// What a refused request must leave as it was.
async fn store_counts(broker: &Broker) -> (u64, usize) {
    (
        broker.count_sessions().await,
        broker.visitor_records().len(),
    )
}

#[tokio::test]
async fn anonymous_visitors_are_web_users_named_in_the_sites_time_zone() {
    let broker = Broker::start().await;
    // The clock reads 2023-11-14 22:13:20 UTC.
    let created = code(
        &broker,
        json!({ "site_key": "demo", "visitor_id": VISITOR }),
    )
    .await;
    let (_, token) = broker.add_agent("demo", "Dana").await;
    let redeemed = broker.redeem(&token, &created.code).await;
    let v = redeemed.visitor;
    assert_eq!(v.display_name, "Web User - 11/14 22:13");
    assert_eq!(v.kind, IdentityKind::Anonymous);
    assert_eq!(
        (v.name, v.email, v.user_id, v.custom_data),
        (None, None, None, None)
    );
    assert_eq!(v.tickets.len(), 1);
    assert_eq!(v.tickets[0].session_id, created.session_id);
    assert_eq!(v.tickets[0].state, SessionState::Authorizing);
    assert_eq!(v.tickets[0].agent_name.as_deref(), Some("Dana"));

    // The `login` site's agents are in Paris (UTC+1 in November). A user
    // whose token gives no name is named by the time too.
    let claims = json!({ "sub": "u-7", "exp": broker.clock.now_ms() / 1000 + 600 });
    let token = jwt::encode(&claims, LOGIN_SECRET.as_bytes());
    let created = code(
        &broker,
        json!({ "site_key": "login", "identity": { "user_id": "u-7", "token": token } }),
    )
    .await;
    let (_, agent) = broker.add_agent("login", "Luc").await;
    let v = broker.redeem(&agent, &created.code).await.visitor;
    assert_eq!(v.display_name, "Web User - 11/14 23:13");
    assert_eq!(v.kind, IdentityKind::Verified);
    assert_eq!(v.user_id.as_deref(), Some("u-7"));
}

#[tokio::test]
async fn a_form_site_requires_a_name_and_a_valid_email() {
    let broker = Broker::start().await;
    let before = store_counts(&broker).await;
    for (body, field) in [
        (json!({ "site_key": "form" }), "visitor.name"),
        (
            json!({ "site_key": "form", "visitor": { "email": "ada@example.com" } }),
            "visitor.name",
        ),
        (
            json!({ "site_key": "form", "visitor": { "name": "Ada" } }),
            "visitor.email",
        ),
        (
            json!({ "site_key": "form", "visitor": { "name": "  ", "email": "ada@example.com" } }),
            "visitor.name",
        ),
        (
            json!({ "site_key": "form", "visitor": { "name": "Ada", "email": "ada@example" } }),
            "visitor.email",
        ),
        (
            json!({ "site_key": "form", "visitor": { "name": "Ada", "email": "ada example.com" } }),
            "visitor.email",
        ),
    ] {
        let message =
            assert_refused(post_code(&broker, &body).await, ErrorCode::InvalidField).await;
        assert!(message.contains(field), "{body}: {message}");
        assert_eq!(store_counts(&broker).await, before, "{body}");
    }
    let created = code(
        &broker,
        json!({ "site_key": "form", "visitor_id": VISITOR,
                "visitor": { "name": " Ada Lovelace ", "email": "ada@example.com" } }),
    )
    .await;
    let (_, token) = broker.add_agent("form", "Dana").await;
    let v = broker.redeem(&token, &created.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Typed);
    assert_eq!(v.display_name, "Ada Lovelace");
    assert_eq!(v.email.as_deref(), Some("ada@example.com"));
    assert_eq!(v.user_id, None);
}

#[tokio::test]
async fn an_optional_form_site_takes_guests_and_checks_what_is_given() {
    let broker = Broker::start().await;
    let (_, token) = broker.add_agent("optional", "Dana").await;
    let guest = code(&broker, json!({ "site_key": "optional" })).await;
    let v = broker.redeem(&token, &guest.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Anonymous);
    assert!(v.display_name.starts_with("Web User - "));

    let before = store_counts(&broker).await;
    let bad = json!({ "site_key": "optional", "visitor": { "email": "nobody@" } });
    let message = assert_refused(post_code(&broker, &bad).await, ErrorCode::InvalidField).await;
    assert!(message.contains("visitor.email"), "{message}");
    assert_eq!(store_counts(&broker).await, before);

    let named = code(
        &broker,
        json!({ "site_key": "optional", "visitor": { "email": "ada@example.com" } }),
    )
    .await;
    let v = broker.redeem(&token, &named.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Typed);
    assert!(
        v.display_name.starts_with("Web User - "),
        "no name was given"
    );
    assert_eq!(v.email.as_deref(), Some("ada@example.com"));

    // This site has no secret: an identity cannot be verified here.
    let signed = alex(&broker, "optional", DEMO_SECRET, None);
    let message = assert_refused(
        post_code(&broker, &signed).await,
        ErrorCode::InvalidIdentity,
    )
    .await;
    assert!(message.contains("secret"), "{message}");
}

#[tokio::test]
async fn a_code_site_takes_only_signed_identities_that_match() {
    let broker = Broker::start().await;
    let now = broker.clock.now_ms() / 1000;
    let claims = alex_claims(&broker);
    let signed = |claims: &Value| jwt::encode(claims, LOGIN_SECRET.as_bytes());
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        signed(&c)
    };
    let before = store_counts(&broker).await;

    for body in [
        json!({ "site_key": "login" }),
        json!({ "site_key": "login", "visitor_id": VISITOR }),
        json!({ "site_key": "login", "visitor": { "name": "Alex", "email": "alex@example.com" } }),
    ] {
        assert_refused(post_code(&broker, &body).await, ErrorCode::IdentityRequired).await;
        assert_eq!(store_counts(&broker).await, before);
    }

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mismatched_name = identity_body("login", signed(&claims), None);
    mismatched_name["identity"]["name"] = json!("Mallory");
    let mut mismatched_user = identity_body("login", signed(&claims), None);
    mismatched_user["identity"]["user_id"] = json!("u-1");
    let mut mismatched_custom = identity_body("login", signed(&claims), None);
    mismatched_custom["identity"]["custom_data"]["plan"] = json!("Platinum");
    let mut extra_custom = identity_body("login", signed(&claims), None);
    extra_custom["identity"]["custom_data"]["admin"] = json!("yes");
    let mut dropped_email = identity_body("login", signed(&claims), None);
    dropped_email["identity"]
        .as_object_mut()
        .unwrap()
        .remove("email");
    let cases = [
        ("unsigned", identity_body("login", String::new(), None)),
        (
            "not a JWT",
            identity_body("login", "signed-by-me".into(), None),
        ),
        ("alg none", identity_body("login", none, None)),
        (
            "alg HS512",
            identity_body(
                "login",
                forge(&json!({ "alg": "HS512" }), &claims, LOGIN_SECRET.as_bytes()),
                None,
            ),
        ),
        (
            "another site's secret",
            identity_body("login", jwt::encode(&claims, DEMO_SECRET.as_bytes()), None),
        ),
        (
            "expired",
            identity_body("login", with("exp", json!(now - 60)), None),
        ),
        (
            "a lifetime over a day",
            identity_body("login", with("exp", json!(now + 86_401)), None),
        ),
        (
            "an agent JWT",
            identity_body("login", with("site", json!("login")), None),
        ),
        ("a changed name", mismatched_name),
        ("a changed user id", mismatched_user),
        ("changed custom data", mismatched_custom),
        ("unsigned custom data", extra_custom),
        ("a left-out email", dropped_email),
    ];
    for (what, body) in cases {
        let token = body["identity"]["token"].as_str().unwrap().to_owned();
        let res = post_code(&broker, &body).await;
        let message = assert_refused(res, ErrorCode::InvalidIdentity).await;
        if !token.is_empty() {
            assert!(!message.contains(&token), "{what}: the token is not echoed");
        }
        assert_eq!(store_counts(&broker).await, before, "{what}");
    }

    let created = code(&broker, alex(&broker, "login", LOGIN_SECRET, None)).await;
    let (_, agent) = broker.add_agent("login", "Luc").await;
    let v = broker.redeem(&agent, &created.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Verified);
    assert_eq!(v.display_name, "Alex Martin");
    assert_eq!(v.user_id.as_deref(), Some("u-1001"));
    assert_eq!(v.email.as_deref(), Some("alex@example.com"));
    let custom = v.custom_data.unwrap();
    assert_eq!(
        (custom["plan"].as_str(), custom["orders"].as_str()),
        ("Gold", "12")
    );
}

#[tokio::test]
async fn signing_in_brings_the_anonymous_tickets_into_the_users_history() {
    let broker = Broker::start().await;
    let (_, dana) = broker.add_agent("demo", "Dana").await;

    // Visit 1: anonymous, helped by Dana, who ends the session.
    let first = code(
        &broker,
        json!({ "site_key": "demo", "visitor_id": VISITOR }),
    )
    .await;
    broker.redeem(&dana, &first.code).await;
    let res = broker.post_end(&first.session_id, &dana).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v = visitor(&broker, &first.session_id, &dana).await;
    assert_eq!((v.kind, v.tickets.len()), (IdentityKind::Anonymous, 1));

    // Visit 2: still anonymous, cancelled by the visitor.
    broker.clock.advance(Duration::from_secs(60));
    let second = code(
        &broker,
        json!({ "site_key": "demo", "visitor_id": VISITOR }),
    )
    .await;
    let res = broker
        .post_cancel(&second.session_id, &second.device_token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    // Visit 3: signed in, same browser.
    broker.clock.advance(Duration::from_secs(60));
    let third = code(&broker, alex(&broker, "demo", DEMO_SECRET, Some(VISITOR))).await;
    let (_, sam) = broker.add_agent("demo", "Sam").await;
    let v = broker.redeem(&sam, &third.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Verified);
    assert_eq!(v.display_name, "Alex Martin");
    let seen: Vec<_> = v
        .tickets
        .iter()
        .map(|t| {
            (
                t.session_id.as_str(),
                t.state,
                t.end_reason,
                t.agent_name.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                third.session_id.as_str(),
                SessionState::Authorizing,
                None,
                Some("Sam")
            ),
            (
                second.session_id.as_str(),
                SessionState::Ended,
                Some(EndReason::DeviceCancelled),
                None
            ),
            (
                first.session_id.as_str(),
                SessionState::Ended,
                Some(EndReason::AgentEnded),
                Some("Dana")
            ),
        ],
        "newest first, the merged ones included"
    );
    let times: Vec<u64> = v.tickets.iter().map(|t| t.created_at).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");

    // Dana, refreshing the finished session, sees the same history now.
    let again = visitor(&broker, &first.session_id, &dana).await;
    assert_eq!(again, v);
    // The anonymous record is gone: the id, used again after sign-out
    // without a reset, starts a history of its own.
    assert_eq!(
        broker
            .visitor_records()
            .iter()
            .filter(|r| r["visitor_id"] == VISITOR)
            .count(),
        0
    );
    let later = code(
        &broker,
        json!({ "site_key": "demo", "visitor_id": VISITOR }),
    )
    .await;
    let v = broker.redeem(&dana, &later.code).await.visitor;
    assert_eq!((v.kind, v.tickets.len()), (IdentityKind::Anonymous, 1));
}

#[tokio::test]
async fn concurrent_sign_ins_merge_each_ticket_exactly_once() {
    // Two brokers on one database file, as two replicas would be, plus
    // concurrent requests to each.
    let a = Broker::start().await;
    let b = Broker::start_on(&a.db, Arc::clone(&a.clock), |s| s).await;
    let mut anonymous = HashSet::new();
    for _ in 0..6 {
        let c = code(&a, json!({ "site_key": "demo", "visitor_id": VISITOR })).await;
        anonymous.insert(c.session_id);
    }
    let body = alex(&a, "demo", DEMO_SECRET, Some(VISITOR));
    let requests = (0..8).map(|i| {
        let client = a.client.clone();
        let url = if i % 2 == 0 {
            a.url("/v1/codes")
        } else {
            b.url("/v1/codes")
        };
        let body = body.clone();
        tokio::spawn(async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            res.json::<CreateCodeResponse>().await.unwrap()
        })
    });
    let mut signed_in = Vec::new();
    for r in futures_util::future::join_all(requests).await {
        signed_in.push(r.unwrap());
    }

    let (_, dana) = a.add_agent("demo", "Dana").await;
    let v = a.redeem(&dana, &signed_in[0].code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Verified);
    let ids: Vec<&str> = v.tickets.iter().map(|t| t.session_id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 6 + 8, "{ids:?}");
    assert_eq!(unique.len(), ids.len(), "no ticket twice");
    assert!(anonymous.iter().all(|id| unique.contains(id.as_str())));
    assert!(signed_in
        .iter()
        .all(|c| unique.contains(c.session_id.as_str())));
    let records: Vec<_> = a
        .visitor_records()
        .into_iter()
        .filter(|r| r["site_key"] == "demo")
        .collect();
    assert_eq!(
        records.len(),
        1,
        "one user record, no anonymous one left: {records:?}"
    );
    assert_eq!(records[0]["user_id"], "u-1001");
    assert_eq!(a.sessions_of_record(records[0]["id"].as_str().unwrap()), 14);
    b.stop().await;
}

#[tokio::test]
async fn a_typed_email_never_joins_a_verified_users_history() {
    let broker = Broker::start().await;
    let (_, dana) = broker.add_agent("demo", "Dana").await;
    // Someone types Alex's email on this browser (unverified)…
    let typed = code(
        &broker,
        json!({ "site_key": "demo", "visitor_id": VISITOR,
                "visitor": { "name": "Alex?", "email": "alex@example.com" } }),
    )
    .await;
    broker.redeem(&dana, &typed.code).await;
    // …then Alex signs in on it.
    let signed = code(&broker, alex(&broker, "demo", DEMO_SECRET, Some(VISITOR))).await;
    let user = broker.redeem(&dana, &signed.code).await.visitor;
    assert_eq!(user.kind, IdentityKind::Verified);
    assert_eq!(user.display_name, "Alex Martin");
    let ids: Vec<_> = user.tickets.iter().map(|t| t.session_id.clone()).collect();
    assert_eq!(
        ids,
        vec![signed.session_id.clone()],
        "the typed ticket stayed out"
    );

    let other = visitor(&broker, &typed.session_id, &dana).await;
    assert_eq!(other.kind, IdentityKind::Typed);
    assert_eq!(other.display_name, "Alex?");
    assert_eq!(other.user_id, None);
    let ids: Vec<_> = other.tickets.iter().map(|t| t.session_id.clone()).collect();
    assert_eq!(ids, vec![typed.session_id]);
}

#[tokio::test]
async fn only_the_sessions_own_agent_reads_its_visitor() {
    let broker = Broker::start().await;
    let (created, dana, _) = broker.authorizing("demo").await;
    let id = &created.session_id;
    assert_eq!(visitor(&broker, id, &dana).await.tickets.len(), 1);
    // The same agent by JWT is the same agent only if the ids match; a
    // colleague and another site's agent do not learn the session exists.
    let (_, colleague) = broker.add_agent("demo", "Sam").await;
    assert_refused(
        get_visitor(&broker, id, &colleague).await,
        ErrorCode::UnknownSession,
    )
    .await;
    let (_, stranger) = broker.add_agent("short", "Eve").await;
    assert_refused(
        get_visitor(&broker, id, &stranger).await,
        ErrorCode::UnknownSession,
    )
    .await;
    let jwt = broker.jwt("demo", "crm-9", "Casey", 600);
    assert_refused(
        get_visitor(&broker, id, &jwt).await,
        ErrorCode::UnknownSession,
    )
    .await;
    // The visitor's own device has no business here.
    assert_refused(
        get_visitor(&broker, id, &created.device_token).await,
        ErrorCode::InvalidToken,
    )
    .await;
    assert_refused(
        get_visitor(&broker, &"f".repeat(32), &dana).await,
        ErrorCode::UnknownSession,
    )
    .await;
    // A code nobody has redeemed has no agent to show it to.
    let pending = broker.create("demo").await;
    assert_refused(
        get_visitor(&broker, &pending.session_id, &dana).await,
        ErrorCode::UnknownSession,
    )
    .await;
}

#[tokio::test]
async fn bad_visitor_data_is_refused_with_a_clear_error_and_changes_nothing() {
    let broker = Broker::start().await;
    let before = store_counts(&broker).await;
    let long = "x".repeat(MAX_TEXT_FIELD + 1);
    let many: serde_json::Map<String, Value> = (0..=MAX_CUSTOM_FIELDS)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect();
    let with_custom = |custom: Value| {
        let mut body = alex(&broker, "demo", DEMO_SECRET, None);
        body["identity"]["custom_data"] = custom;
        body
    };
    let with_identity = |key: &str, value: Value| {
        let mut body = alex(&broker, "demo", DEMO_SECRET, None);
        body["identity"][key] = value;
        body
    };
    let mut no_user = alex(&broker, "demo", DEMO_SECRET, None);
    no_user["identity"]
        .as_object_mut()
        .unwrap()
        .remove("user_id");
    let cases = vec![
        (
            "a malformed visitor id",
            json!({ "site_key": "demo", "visitor_id": "not-hex" }),
            ErrorCode::InvalidField,
            "visitor_id",
        ),
        (
            "an uppercase visitor id",
            json!({ "site_key": "demo", "visitor_id": VISITOR.to_uppercase() }),
            ErrorCode::InvalidField,
            "visitor_id",
        ),
        (
            "a numeric visitor id",
            json!({ "site_key": "demo", "visitor_id": 5 }),
            ErrorCode::MalformedJson,
            "visitor_id",
        ),
        (
            "too many custom fields",
            with_custom(Value::Object(many)),
            ErrorCode::InvalidField,
            "identity.custom_data",
        ),
        (
            "a long custom key",
            with_custom(json!({ "k".repeat(MAX_CUSTOM_KEY + 1): "v" })),
            ErrorCode::InvalidField,
            "identity.custom_data",
        ),
        (
            "a long custom value",
            with_custom(json!({ "plan": long })),
            ErrorCode::InvalidField,
            "identity.custom_data.plan",
        ),
        (
            "a numeric custom value",
            with_custom(json!({ "orders": 12 })),
            ErrorCode::MalformedJson,
            "string",
        ),
        (
            "custom data as a list",
            with_custom(json!(["Gold"])),
            ErrorCode::MalformedJson,
            "map",
        ),
        ("no user id", no_user, ErrorCode::MalformedJson, "user_id"),
        (
            "an identity email that is not one",
            with_identity("email", json!("alex")),
            ErrorCode::InvalidField,
            "identity.email",
        ),
        (
            "a long identity name",
            with_identity("name", json!(long)),
            ErrorCode::InvalidField,
            "identity.name",
        ),
        (
            "an unknown identity field",
            with_identity("admin", json!(true)),
            ErrorCode::MalformedJson,
            "admin",
        ),
        (
            "typed data beside an identity",
            {
                let mut body = alex(&broker, "demo", DEMO_SECRET, None);
                body["visitor"] = json!({ "name": "Someone Else" });
                body
            },
            ErrorCode::InvalidField,
            "visitor",
        ),
        (
            "a long typed name",
            json!({ "site_key": "form", "visitor": { "name": long, "email": "a@b.c" } }),
            ErrorCode::InvalidField,
            "visitor.name",
        ),
        (
            "a typed email with two @",
            json!({ "site_key": "demo", "visitor": { "email": "a@b@example.com" } }),
            ErrorCode::InvalidField,
            "visitor.email",
        ),
        (
            "a typed name that is a number",
            json!({ "site_key": "optional", "visitor": { "name": 7 } }),
            ErrorCode::MalformedJson,
            "string",
        ),
    ];
    for (what, body, error, says) in cases {
        let res = post_code(&broker, &body).await;
        let message = assert_refused(res, error).await;
        assert!(message.contains(says), "{what}: {message}");
        assert_eq!(store_counts(&broker).await, before, "{what}");
    }
}

async fn demo_login(broker: &Broker, body: &Value) -> Response {
    broker
        .client
        .post(broker.url("/demo/login"))
        .json(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn the_demo_login_is_off_without_the_flag() {
    let broker = Broker::start().await;
    let res = demo_login(&broker, &json!({ "site_key": "demo", "user": "alex" })).await;
    assert_refused(res, ErrorCode::NotFound).await;
}

#[tokio::test]
async fn the_demo_login_signs_identities_that_pass_code_mode() {
    let broker = Broker::start_with(|s| s.with_demo_login(true)).await;
    let res = demo_login(&broker, &json!({ "site_key": "login", "user": "alex" })).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let identity: Value = res.json().await.unwrap();
    assert_eq!(identity["userId"], "u-1001");
    assert_eq!(identity["name"], "Alex Martin");
    assert_eq!(identity["email"], "alex@example.com");
    assert_eq!(
        identity["customData"],
        json!({ "plan": "Gold", "orders": "12" })
    );
    let token = identity["token"].as_str().unwrap().to_owned();

    // What identify() would send on, in the wire's spelling.
    let body = json!({
        "site_key": "login",
        "visitor_id": VISITOR,
        "identity": {
            "user_id": identity["userId"], "name": identity["name"],
            "email": identity["email"], "custom_data": identity["customData"],
            "token": token,
        }
    });
    let created = code(&broker, body.clone()).await;
    let (_, luc) = broker.add_agent("login", "Luc").await;
    let v = broker.redeem(&luc, &created.code).await.visitor;
    assert_eq!(
        (v.kind, v.display_name.as_str()),
        (IdentityKind::Verified, "Alex Martin")
    );

    // Signed for one site, it is no identity at another.
    let mut elsewhere = body.clone();
    elsewhere["site_key"] = json!("demo");
    assert_refused(
        post_code(&broker, &elsewhere).await,
        ErrorCode::InvalidIdentity,
    )
    .await;
    // An hour later (and the leeway), it has expired.
    broker.clock.advance(Duration::from_secs(3600 + 30));
    let message = assert_refused(post_code(&broker, &body).await, ErrorCode::InvalidIdentity).await;
    assert!(message.contains("expired"), "{message}");

    let sam = demo_login(&broker, &json!({ "site_key": "demo", "user": "sam" })).await;
    assert_eq!(sam.status(), StatusCode::OK);
    for (body, error) in [
        (
            json!({ "site_key": "demo", "user": "mallory" }),
            ErrorCode::NotFound,
        ),
        (
            json!({ "site_key": "nope", "user": "alex" }),
            ErrorCode::UnknownSite,
        ),
        // A site without a secret cannot sign.
        (
            json!({ "site_key": "optional", "user": "alex" }),
            ErrorCode::NotFound,
        ),
        (json!({ "site_key": "demo" }), ErrorCode::MalformedJson),
    ] {
        assert_refused(demo_login(&broker, &body).await, error).await;
    }
    // The broker's own pages only.
    let res = broker
        .client
        .post(broker.url("/demo/login"))
        .header(ORIGIN, "http://localhost:8080")
        .json(&json!({ "site_key": "demo", "user": "alex" }))
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::OriginNotAllowed).await;
    let res = broker
        .client
        .post(broker.url("/demo/login"))
        .header(ORIGIN, broker.base.clone())
        .json(&json!({ "site_key": "demo", "user": "alex" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn the_binary_says_loudly_that_the_demo_login_is_demo_only() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    const BIN: &str = env!("CARGO_BIN_EXE_agent-assist-broker");
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--demo-login"), "{help}");
    assert!(help.contains("NEVER IN PRODUCTION"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sites.toml"),
        "[[site]]\nkey = \"demo\"\nname = \"Demo\"\nallowed_origins = []\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo-login",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(dir.path().join("sites.toml"))
        .arg("--db")
        .arg(dir.path().join("broker.sqlite3"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let warned = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("DEMO LOGIN IS ON") => break Some(line),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = warned.expect("a warning about the demo login at start");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("production"), "{line}");
}

/// The server-side example in `examples/mint_identity.rs`, included as is.
#[path = "../examples/mint_identity.rs"]
mod mint_example;

#[tokio::test]
async fn the_rust_minting_example_makes_identities_the_broker_accepts() {
    let broker = Broker::start().await;
    let now = broker.clock.now_ms() / 1000;
    let id = mint_example::mint_identity(
        "u-1001",
        "Alex Martin",
        "alex@example.com",
        LOGIN_SECRET,
        now,
        600,
    );
    let body = json!({
        "site_key": "login",
        "identity": {
            "user_id": id["userId"], "name": id["name"], "email": id["email"], "token": id["token"],
        },
    });
    let created = code(&broker, body).await;
    let (_, agent) = broker.add_agent("login", "Luc").await;
    let v = broker.redeem(&agent, &created.code).await.visitor;
    assert_eq!(v.kind, IdentityKind::Verified);
    assert_eq!(v.user_id.as_deref(), Some("u-1001"));
    assert_eq!(v.display_name, "Alex Martin");
}
