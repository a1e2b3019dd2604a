//! `GET /v1/openapi.json` against the broker it describes: every route of
//! `src/routes/` is in the document, every operation of the document is a
//! route, and real answers (a short flow and a few refusals) match the
//! document's statuses, media types, headers and schemas.

mod common;

use std::collections::BTreeSet;

use common::Broker;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

async fn document(broker: &Broker) -> Value {
    let res = broker
        .client
        .get(broker.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    let doc: Value = res.json().await.expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// `(method, path)` of every `.route("…", method(…))` in `src/routes/`,
/// read from the source so that a route added without documenting it fails
/// here. The catch-all JSON 404 under `/v1/` is not an operation.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for call in text.split(".route(").skip(1) {
            let call: String = call.chars().filter(|c| !c.is_whitespace()).collect();
            let path = call
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(path, _)| path.to_owned())
                .expect("a route's path is a string literal");
            let after = &call[path.len() + 3..];
            let method = after
                .split_once('(')
                .map(|(m, _)| m.to_owned())
                .expect("a route's handler is `method(handler)`");
            if path.contains("{*") {
                continue;
            }
            assert!(
                ["get", "post"].contains(&method.as_str()),
                "{path}: `{method}` routes are not read by this test yet"
            );
            routes.insert((method, path));
        }
    }
    routes
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes() {
    // With the demo login on, which is otherwise answered as no route.
    let broker = Broker::start_with(|s| s.with_demo_login(true)).await;
    let doc = document(&broker).await;
    let source = routes_in_source();
    // Every resource file contributes at least one route.
    assert!(source.len() >= 15, "{source:?}");
    assert_eq!(operations(&doc), source);

    for (method, path) in source {
        // Each operation is a route: not the JSON 404 for unknown paths,
        // nor a 405 for a method the path does not have.
        let url = broker.url(&path.replace("{id}", &"0".repeat(32)));
        let res = broker
            .client
            .request(
                Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                url,
            )
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), 405, "{method} {path}");
        if res.status() == 404 {
            let body: Value = res.json().await.unwrap();
            assert_ne!(body["error"], "not_found", "{method} {path}: {body}");
        }
    }

    let ids: Vec<&Value> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| &op["operationId"])
        .collect();
    let unique: BTreeSet<&str> = ids.iter().filter_map(|id| id.as_str()).collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique");
}

/// Checks a real answer against what the document says `method path`
/// answers with its status: documented, the same media type, the required
/// headers, and a body matching the schema. Returns the body (or `Null`).
async fn conforms(doc: &Value, method: &str, path: &str, res: Response) -> Value {
    let status = res.status().as_u16();
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the document");
    let documented = &op["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    for (name, header) in documented["headers"].as_object().into_iter().flatten() {
        if header["required"] == true {
            assert!(
                res.headers().contains_key(name.as_str()),
                "{method} {path} {status}: no {name} header"
            );
        }
    }
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.bytes().await.unwrap();
    conforms_body(doc, method, path, status, content_type, &body)
}

/// The body half of [`conforms`].
fn conforms_body(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    content_type: Option<String>,
    body: &[u8],
) -> Value {
    let documented = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let Some(content) = documented["content"].as_object() else {
        assert!(
            body.is_empty(),
            "{method} {path} {status}: a body the document does not have"
        );
        return Value::Null;
    };
    let content_type = content_type.expect("a documented body has a Content-Type");
    let media = content
        .get(&content_type)
        .unwrap_or_else(|| panic!("{method} {path} {status}: {content_type} not documented"));
    let body: Value = serde_json::from_slice(body).expect("a JSON body");
    // The operation's schema, with the document's components beside it so
    // that its `#/components/schemas/…` references resolve.
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {body} breaks the document: {errors:?}"
    );
    body
}

async fn send(req: RequestBuilder) -> Response {
    req.send().await.expect("request")
}

#[tokio::test]
async fn real_answers_match_the_document() {
    let broker = Broker::start().await;
    let doc = document(&broker).await;
    let c = &broker.client;
    let url = |p: &str| broker.url(p);

    // A code, its session, a ticket, a cancel.
    let res = send(
        c.post(url("/v1/codes"))
            .json(&json!({ "site_key": "demo" })),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created = conforms(&doc, "post", "/v1/codes", res).await;
    let id = created["session_id"].as_str().unwrap().to_owned();
    let token = created["device_token"].as_str().unwrap().to_owned();
    let session = format!("/v1/sessions/{id}");

    let res = send(c.get(url(&session)).bearer_auth(&token)).await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "get", "/v1/sessions/{id}", res).await;
    let res = send(
        c.post(url(&format!("{session}/ticket")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "post", "/v1/sessions/{id}/ticket", res).await;
    let res = send(
        c.post(url(&format!("{session}/consent")))
            .bearer_auth(&token)
            .json(&json!({ "allow": true })),
    )
    .await;
    assert_eq!(res.status(), 409);
    conforms(&doc, "post", "/v1/sessions/{id}/consent", res).await;
    let res = send(
        c.post(url(&format!("{session}/cancel")))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(res.status(), 200);
    let cancelled = conforms(&doc, "post", "/v1/sessions/{id}/cancel", res).await;
    assert_eq!(cancelled["state"], "ended");

    // An agent: who they are, a redemption of a live code, the visitor.
    let (_, agent) = broker.add_agent("demo", "Dana").await;
    let res = send(c.get(url("/v1/agent/me")).bearer_auth(&agent)).await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "get", "/v1/agent/me", res).await;
    let live = broker.create("demo").await;
    let res = send(
        c.post(url("/v1/agent/redeem"))
            .bearer_auth(&agent)
            .json(&json!({ "code": live.code })),
    )
    .await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "post", "/v1/agent/redeem", res).await;
    let visitor = format!("/v1/sessions/{}/visitor", live.session_id);
    let res = send(c.get(url(&visitor)).bearer_auth(&agent)).await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "get", "/v1/sessions/{id}/visitor", res).await;
    let res = send(
        c.post(url(&format!("/v1/sessions/{}/end", live.session_id)))
            .bearer_auth(&agent),
    )
    .await;
    assert_eq!(res.status(), 200);
    conforms(&doc, "post", "/v1/sessions/{id}/end", res).await;

    // Refusals, each with the status and error code the document names.
    let refusals: Vec<(&str, &str, RequestBuilder, u16)> = vec![
        ("get", "/v1/sessions/{id}", c.get(url(&session)), 401),
        (
            "get",
            "/v1/sessions/{id}",
            c.get(url(&format!("/v1/sessions/{}", "f".repeat(32))))
                .bearer_auth(&token),
            404,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .header(CONTENT_TYPE, "application/json")
                .body("{"),
            400,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .json(&json!({ "site_key": "demo", "visitor_id": "X" })),
            400,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes")).body(r#"{"site_key":"demo"}"#),
            415,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .json(&json!({ "site_key": "x".repeat(17 * 1024) })),
            413,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .json(&json!({ "site_key": "nope" })),
            404,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .json(&json!({ "site_key": "login" })),
            401,
        ),
        (
            "post",
            "/v1/codes",
            c.post(url("/v1/codes"))
                .header("origin", common::EVIL_ORIGIN)
                .json(&json!({ "site_key": "demo" })),
            403,
        ),
        (
            "post",
            "/v1/agent/redeem",
            c.post(url("/v1/agent/redeem"))
                .bearer_auth(&agent)
                .json(&json!({ "code": "12" })),
            400,
        ),
        (
            "post",
            "/v1/agent/redeem",
            c.post(url("/v1/agent/redeem"))
                .bearer_auth(&agent)
                .json(&json!({ "code": "000000" })),
            404,
        ),
        ("get", "/v1/agent/me", c.get(url("/v1/agent/me")), 401),
        (
            "get",
            "/v1/sessions/{id}/events",
            c.get(url(&format!("{session}/events")))
                .query(&[("ticket", "0")]),
            401,
        ),
        (
            "get",
            "/v1/sessions/{id}/mirror",
            c.get(url(&format!("{session}/mirror"))),
            400,
        ),
        (
            "get",
            "/v1/sessions/{id}/visitor",
            c.get(url(&format!("/v1/sessions/{}/visitor", "e".repeat(32))))
                .bearer_auth(&agent),
            404,
        ),
        (
            "post",
            "/demo/login",
            c.post(url("/demo/login"))
                .json(&json!({ "site_key": "demo", "user": "alex" })),
            404,
        ),
    ];
    for (method, path, req, status) in refusals {
        let res = send(req).await;
        assert_eq!(res.status(), status, "{method} {path}");
        let body = conforms(&doc, method, path, res).await;
        assert!(body["message"].is_string(), "{method} {path}: {body}");
    }

    // Over a creation limit: 429 with `Retry-After` (the `limited` site
    // allows two live codes per visitor).
    let visitor_id = "a".repeat(32);
    let limited = || {
        c.post(url("/v1/codes"))
            .header("origin", "https://limited.example")
            .json(&json!({ "site_key": "limited", "visitor_id": visitor_id }))
    };
    for _ in 0..2 {
        assert_eq!(send(limited()).await.status(), 201);
    }
    let res = send(limited()).await;
    assert_eq!(res.status(), 429);
    let body = conforms(&doc, "post", "/v1/codes", res).await;
    assert_eq!(body["error"], "rate_limited");

    // Headers over the limit: 431, no body, as documented.
    let mut req = c.get(url("/healthz"));
    for i in 0..80 {
        req = req.header(format!("x-filler-{i}"), "x");
    }
    let res = send(req).await;
    assert_eq!(res.status(), 431);
    conforms(&doc, "get", "/healthz", res).await;

    let res = send(c.get(url("/healthz"))).await;
    conforms(&doc, "get", "/healthz", res).await;
}

/// The server's own 408, over raw TCP (a client that stops mid-body),
/// matches the document too.
#[tokio::test]
async fn a_request_timeout_matches_the_document() {
    use agent_assist_broker::server::HttpLimits;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let limits = HttpLimits {
        request_timeout: Duration::from_secs(1),
        ..HttpLimits::default()
    };
    let broker = Broker::start_with(|s| s.with_http_limits(limits)).await;
    let doc = document(&broker).await;
    let addr = broker.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"site_key":"demo"}"#;
    let head = format!(
        "POST /v1/codes HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the body, and the rest never comes.
    stream.write_all(&body.as_bytes()[..8]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the broker answers and closes")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .map(str::to_owned);
    let body = conforms_body(
        &doc,
        "post",
        "/v1/codes",
        408,
        content_type,
        body.as_bytes(),
    );
    assert_eq!(body["error"], "request_timeout");
}

/// A schema that allowed what the broker refuses would let the fuzzer's
/// valid requests fail, and the reverse would hide refusals: the string
/// rules in the document agree with the broker on the edge cases.
#[test]
fn string_rules_agree_with_the_broker() {
    use agent_assist_broker::identity::is_email;
    let doc: Value = serde_json::from_str(agent_assist_broker::routes::openapi::text()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let check = |schema: &Value, value: &str| {
        jsonschema::draft202012::new(schema)
            .unwrap()
            .is_valid(&json!(value))
    };
    let signed_email = &schemas["Identity"]["properties"]["email"];
    for email in [
        "a@b.c",
        "a.b@c.d.e",
        "a@b..c",
        "a@.b",
        "a@b.",
        "@b.c",
        "a@b",
        "a b@c.d",
        "a@b@c.d",
        "a\u{3000}@b.c",
        "a\u{feff}@b.c",
        "é@ü.ñ",
        "a\u{85}@b.c",
    ] {
        assert_eq!(check(signed_email, email), is_email(email), "{email:?}");
    }
    let typed_email = &schemas["VisitorInfo"]["properties"]["email"];
    for (email, ok) in [
        ("  a@b.c\t", true),
        ("   ", true),
        ("", true),
        ("a@b", false),
        (" a@b.c x", false),
    ] {
        assert_eq!(check(typed_email, email), ok, "{email:?}");
    }
    let typed_name = &schemas["VisitorInfo"]["properties"]["name"];
    let long = "n".repeat(200);
    for (name, ok) in [
        ("Ada", true),
        ("\tAda\n", true),
        ("A\u{7}da", false),
        (long.as_str(), true),
        (&format!("  {long}  "), true),
        (&format!("{long}n"), false),
    ] {
        assert_eq!(check(typed_name, name), ok, "{name:?}");
    }
}
