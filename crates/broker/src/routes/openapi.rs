//! `GET /v1/openapi.json`: the HTTP API as an OpenAPI 3.1 document.
//!
//! The schemas are derived from the wire types in `agent_assist_protocol`
//! (its `schema` feature), requests as they are deserialised and answers as
//! they are serialised, so the document cannot drift from the types. Paths,
//! credentials and statuses are written here, next to the list of routes
//! they describe; `tests/openapi.rs` checks that every route of `routes/` is
//! in the document and that real answers match it, and `cargo xtask test
//! fuzz` runs schemathesis against a live broker with it.
//!
//! Every operation lists every status it can answer: its own, plus what the
//! server loop and middleware answer for any request (408 `request_timeout`,
//! 431 without a body for oversized headers, 503 `shutting_down`, and 500
//! `internal` wherever the store is read). Each error status names the
//! error codes it carries. CORS preflights (`OPTIONS`) and the 405/404
//! answers to methods and paths that do not exist are not operations and
//! are not listed.
//!
//! The document is built once, on first request, and served from memory.

use std::sync::OnceLock;

use agent_assist_protocol::mirror::MAX_FRAME_BYTES;
use agent_assist_protocol::{
    AgentMe, ApiError, ConsentRequest, CreateCodeRequest, CreateCodeResponse, ErrorCode,
    RedeemRequest, RedeemResponse, SessionStatus, StreamTicket, VisitorView, SESSION_EVENT,
};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::demo::{DemoIdentity, LoginRequest};
use crate::extract::MAX_BODY_BYTES;
use crate::secrets::STREAM_TICKET_TTL_SECS;
use crate::server::{MAX_HEADERS, MAX_HEADER_BYTES};
use crate::AppState;

/// Where the document is served.
pub const PATH: &str = "/v1/openapi.json";

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(serve))
}

async fn serve() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], text())
}

/// The document as served, built on first use.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    // Serialising a `Value` cannot fail.
    TEXT.get_or_init(|| serde_json::to_string(&document()).unwrap_or_default())
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anyone (what the request says is checked, not who sends it).
    None,
    Device,
    Agent,
    DeviceOrAgent,
    Ticket,
}

/// One operation, before it becomes JSON.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    auth: Auth,
    params: Vec<Value>,
    /// The request body's schema, always `application/json`.
    body: Option<Value>,
    /// The success status and its response object.
    ok: (u16, Value),
    /// Refusals particular to this operation: status, the error codes it
    /// carries, and when.
    errors: Vec<(u16, &'static [ErrorCode], &'static str)>,
    /// Whether it reads or writes the store (and so can fail with 500).
    store: bool,
}

/// Two generators: requests are described as the broker reads them,
/// answers as it writes them (e.g. a field with a default is optional in a
/// request but always present in an answer).
struct Schemas {
    requests: SchemaGenerator,
    answers: SchemaGenerator,
}

impl Schemas {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            // OpenAPI 3.1's own dialect is 2020-12; no `$schema` per schema.
            s.meta_schema = None;
        });
        Self {
            requests: settings.clone().for_deserialize().into_generator(),
            answers: settings.for_serialize().into_generator(),
        }
    }

    fn request<T: JsonSchema>(&mut self) -> Value {
        self.requests.subschema_for::<T>().to_value()
    }

    fn answer<T: JsonSchema>(&mut self) -> Value {
        self.answers.subschema_for::<T>().to_value()
    }

    /// Every named schema. Request and answer types are disjoint, so no
    /// name is defined twice (a unit test checks).
    fn components(mut self) -> Map<String, Value> {
        let mut all = self.answers.take_definitions(true);
        for (name, schema) in self.requests.take_definitions(true) {
            all.entry(name).or_insert(schema);
        }
        all
    }
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn answer(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

/// An `ApiError` answer whose `error` is one of `codes`.
fn refusal(description: &str, codes: &[ErrorCode]) -> Value {
    let names: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let schema = json!({
        "allOf": [
            { "$ref": "#/components/schemas/ApiError" },
            { "properties": { "error": { "enum": names } } },
        ],
    });
    let mut response = answer(description, schema);
    if codes.contains(&ErrorCode::RateLimited) {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds until a retry can succeed (also `retry_after` in the body).",
                "required": true,
                "schema": { "type": "integer", "minimum": 1 },
            },
        });
    }
    response
}

fn session_id_param() -> Value {
    json!({
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The session id (`session_id` of `POST /v1/codes`).",
        "schema": { "type": "string", "pattern": agent_assist_protocol::schema::lower_hex(32) },
    })
}

const ORIGIN_REFUSED: (u16, &[ErrorCode], &str) = (
    403,
    &[ErrorCode::OriginNotAllowed],
    "The request's `Origin` is not one the site allows.",
);

const SESSION_UNKNOWN: (u16, &[ErrorCode], &str) = (
    404,
    &[ErrorCode::UnknownSession],
    "No session has this id (to an agent: or it is not the session they redeemed).",
);

/// 400/413/415 for a JSON body.
fn body_refusals() -> [(u16, &'static [ErrorCode], &'static str); 3] {
    [
        (
            413,
            &[ErrorCode::PayloadTooLarge],
            "The body is larger than the broker accepts (16 KiB).",
        ),
        (
            415,
            &[ErrorCode::UnsupportedMediaType],
            "The body is not sent as `Content-Type: application/json`.",
        ),
        (
            400,
            &[ErrorCode::MalformedJson],
            "The body is not a JSON object of the expected shape.",
        ),
    ]
}

fn token_refused(description: &'static str) -> (u16, &'static [ErrorCode], &'static str) {
    (401, &[ErrorCode::InvalidToken], description)
}

fn operations(s: &mut Schemas) -> Vec<Op> {
    let session = |s: &mut Schemas, what: &str| (200, answer(what, s.answer::<SessionStatus>()));
    let mut ops = vec![
        Op {
            method: "post",
            path: "/v1/codes",
            id: "createCode",
            summary: "A visitor asks for a support code.",
            auth: Auth::None,
            params: vec![],
            body: Some(s.request::<CreateCodeRequest>()),
            ok: (
                201,
                answer(
                    "The code, the session it opens, and the device's credentials for it.",
                    s.answer::<CreateCodeResponse>(),
                ),
            ),
            errors: vec![
                (
                    400,
                    &[ErrorCode::MalformedJson, ErrorCode::InvalidField],
                    "The body is not a JSON object of the expected shape, or a field breaks \
                     its limits (or the site's form requires a name and an email).",
                ),
                (
                    401,
                    &[ErrorCode::IdentityRequired, ErrorCode::InvalidIdentity],
                    "The site identifies its visitors and the identity is missing or not \
                     signed by the site.",
                ),
                ORIGIN_REFUSED,
                (
                    404,
                    &[ErrorCode::UnknownSite],
                    "No site has this `site_key`.",
                ),
                body_refusals()[0],
                body_refusals()[1],
                (
                    429,
                    &[ErrorCode::RateLimited],
                    "A creation limit of the site (per visitor, per network address) is \
                     reached; nothing was stored.",
                ),
                (
                    503,
                    &[
                        ErrorCode::NoFreeCodes,
                        ErrorCode::ShuttingDown,
                        ErrorCode::StoreUnavailable,
                    ],
                    "The site has no free code right now, the broker is shutting down, or it \
                     cannot reach its store (Redis); nothing was stored.",
                ),
            ],
            store: true,
        },
        Op {
            method: "get",
            path: "/v1/sessions/{id}",
            id: "getSession",
            summary: "The session's state, for its device or the agent who redeemed it.",
            auth: Auth::DeviceOrAgent,
            params: vec![session_id_param()],
            body: None,
            ok: session(s, "The session."),
            errors: vec![
                token_refused("No or a wrong credential for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
            ],
            store: true,
        },
        Op {
            method: "post",
            path: "/v1/sessions/{id}/cancel",
            id: "cancelSession",
            summary: "The device cancels its code (an ended session stays as it is).",
            auth: Auth::Device,
            params: vec![session_id_param()],
            body: None,
            ok: session(s, "The session, now ended."),
            errors: vec![
                token_refused("No or a wrong device token for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
                (
                    409,
                    &[ErrorCode::InvalidState],
                    "The session is active: end it rather than cancel it.",
                ),
            ],
            store: true,
        },
        Op {
            method: "post",
            path: "/v1/sessions/{id}/consent",
            id: "answerConsent",
            summary: "The visitor allows or denies the agent who redeemed the code.",
            auth: Auth::Device,
            params: vec![session_id_param()],
            body: Some(s.request::<ConsentRequest>()),
            ok: session(s, "The session, now active or ended."),
            errors: [
                token_refused("No or a wrong device token for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
                (
                    409,
                    &[ErrorCode::InvalidState],
                    "The session is not waiting for consent.",
                ),
            ]
            .into_iter()
            .chain(body_refusals())
            .collect(),
            store: true,
        },
        Op {
            method: "post",
            path: "/v1/sessions/{id}/end",
            id: "endSession",
            summary: "The device or the session's agent ends the session.",
            auth: Auth::DeviceOrAgent,
            params: vec![session_id_param()],
            body: None,
            ok: session(s, "The session, now ended."),
            errors: vec![
                token_refused("No or a wrong credential for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
                (
                    409,
                    &[ErrorCode::InvalidState],
                    "The session cannot be ended in its state.",
                ),
            ],
            store: true,
        },
        Op {
            method: "post",
            path: "/v1/sessions/{id}/ticket",
            id: "issueStreamTicket",
            summary: "A short-lived ticket for the session's event stream.",
            auth: Auth::DeviceOrAgent,
            params: vec![session_id_param()],
            body: None,
            ok: (
                200,
                answer(
                    &format!("The ticket, usable for {STREAM_TICKET_TTL_SECS} s."),
                    s.answer::<StreamTicket>(),
                ),
            ),
            errors: vec![
                token_refused("No or a wrong credential for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
            ],
            store: true,
        },
        Op {
            method: "get",
            path: "/v1/sessions/{id}/events",
            id: "followSession",
            summary: "The session's states as Server-Sent Events.",
            auth: Auth::Ticket,
            params: vec![
                session_id_param(),
                json!({
                    "name": "last_event_id",
                    "in": "query",
                    "description": "Resume after this event id (for clients that cannot \
                                    send `Last-Event-ID`).",
                    "schema": { "type": "integer", "minimum": 0 },
                }),
                json!({
                    "name": "Last-Event-ID",
                    "in": "header",
                    "description": "Resume after this event id (what `EventSource` sends \
                                    when it reconnects); wins over the query.",
                    "schema": { "type": "integer", "minimum": 0 },
                }),
            ],
            body: None,
            ok: (
                200,
                json!({
                    "description": format!(
                        "Every stored event after the one resumed from, then each new one, \
                         as `id: <sequence number>`, `event: {SESSION_EVENT}`, `data:` a \
                         `SessionStatus` in JSON; closes after the `ended` event."
                    ),
                    "content": {
                        "text/event-stream": {
                            "schema": { "type": "string" },
                        },
                    },
                }),
            ),
            errors: vec![
                (
                    400,
                    &[ErrorCode::InvalidField],
                    "The query is malformed, or `Last-Event-ID` / `last_event_id` is not a \
                     whole number.",
                ),
                token_refused("No, an expired or a wrong ticket for this session."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
            ],
            store: true,
        },
        Op {
            method: "get",
            path: "/v1/agent/me",
            id: "whoAmI",
            summary: "Who the agent credential belongs to.",
            auth: Auth::Agent,
            params: vec![],
            body: None,
            ok: (
                200,
                answer("The agent and their site.", s.answer::<AgentMe>()),
            ),
            errors: vec![
                token_refused("No agent credential, or a wrong, expired or revoked one."),
                ORIGIN_REFUSED,
            ],
            store: true,
        },
        Op {
            method: "post",
            path: "/v1/agent/redeem",
            id: "redeemCode",
            summary: "An agent enters the code the visitor read out.",
            auth: Auth::Agent,
            params: vec![],
            body: Some(s.request::<RedeemRequest>()),
            ok: (
                200,
                answer(
                    "The session (now authorizing), the visitor and a stream ticket.",
                    s.answer::<RedeemResponse>(),
                ),
            ),
            errors: vec![
                (
                    400,
                    &[ErrorCode::MalformedJson, ErrorCode::InvalidField],
                    "The body is not a JSON object of the expected shape, or the code is \
                     not six digits (not counted as a failure).",
                ),
                token_refused("No agent credential, or a wrong, expired or revoked one."),
                ORIGIN_REFUSED,
                (
                    404,
                    &[ErrorCode::NoSuchCode, ErrorCode::UnknownSession],
                    "The code is wrong, expired, cancelled, used or another site's (one \
                     answer for all; counted against the limits).",
                ),
                body_refusals()[0],
                body_refusals()[1],
                (
                    429,
                    &[ErrorCode::RateLimited],
                    "Too many failed codes: redeeming is locked for the agent or the site.",
                ),
            ],
            store: true,
        },
        Op {
            method: "get",
            path: "/v1/sessions/{id}/visitor",
            id: "getVisitor",
            summary: "The session's visitor, for the agent who redeemed it.",
            auth: Auth::Agent,
            params: vec![session_id_param()],
            body: None,
            ok: (
                200,
                answer(
                    "The visitor and their tickets at this site.",
                    s.answer::<VisitorView>(),
                ),
            ),
            errors: vec![
                token_refused("No agent credential (a device token is not one), or a wrong one."),
                ORIGIN_REFUSED,
                SESSION_UNKNOWN,
            ],
            store: true,
        },
    ];
    for (path, id, summary, who) in [
        (
            "/v1/sessions/{id}/mirror",
            "mirrorVisitorSocket",
            "The visitor's page stream (WebSocket).",
            "the session's device token",
        ),
        (
            "/v1/sessions/{id}/mirror/view",
            "mirrorViewSocket",
            "The agent's live view of the visitor's page (WebSocket).",
            "the agent's API token or JWT",
        ),
    ] {
        ops.push(Op {
            method: "get",
            path,
            id,
            summary,
            auth: Auth::None,
            params: vec![session_id_param()],
            body: None,
            ok: (
                101,
                json!({
                    "description": format!(
                        "The WebSocket is open. Its first frame must carry {who}; frames \
                         are JSON (`agent_assist_protocol::mirror`), at most \
                         {MAX_FRAME_BYTES} bytes."
                    ),
                }),
            ),
            errors: vec![
                (
                    400,
                    &[ErrorCode::InvalidField],
                    "The request is not a WebSocket upgrade.",
                ),
                ORIGIN_REFUSED,
                (404, &[ErrorCode::UnknownSession], "No session has this id."),
            ],
            store: true,
        });
    }
    ops.push(Op {
        method: "post",
        path: "/demo/login",
        id: "demoLogin",
        summary: "The demo shop's fake login (only with `serve --demo-login`).",
        auth: Auth::None,
        params: vec![],
        body: Some(s.request::<LoginRequest>()),
        ok: (
            200,
            answer(
                "An identity for `AgentAssist.identify()`, signed for an hour.",
                s.answer::<DemoIdentity>(),
            ),
        ),
        errors: [
            ORIGIN_REFUSED,
            (
                404,
                &[ErrorCode::NotFound, ErrorCode::UnknownSite],
                "The demo login is off, no site has this key, the site has no secret, or no \
                 demo user has this name.",
            ),
        ]
        .into_iter()
        .chain(body_refusals())
        .collect(),
        store: false,
    });
    ops.push(Op {
        method: "get",
        path: "/healthz",
        id: "health",
        summary: "Answers as soon as the broker serves requests.",
        auth: Auth::None,
        params: vec![],
        body: None,
        ok: (
            200,
            answer(
                "The broker is up.",
                json!({
                    "type": "object",
                    "properties": { "ok": { "const": true } },
                    "required": ["ok"],
                }),
            ),
        ),
        errors: vec![],
        store: false,
    });
    ops.push(Op {
        method: "get",
        path: PATH,
        id: "openApiDocument",
        summary: "This document.",
        auth: Auth::None,
        params: vec![],
        body: None,
        ok: (
            200,
            answer("The OpenAPI 3.1 document.", json!({ "type": "object" })),
        ),
        errors: vec![],
        store: false,
    });
    ops
}

impl Op {
    fn into_json(self) -> Value {
        let mut responses = Map::new();
        let (status, ok) = self.ok;
        responses.insert(status.to_string(), ok);
        let mut errors = self.errors;
        errors.push((
            408,
            &[ErrorCode::RequestTimeout],
            "The request (its body, or the work on it) took longer than the broker allows.",
        ));
        if !errors.iter().any(|(status, ..)| *status == 503) {
            errors.push(if self.store {
                (
                    503,
                    &[ErrorCode::ShuttingDown, ErrorCode::StoreUnavailable],
                    "The broker is shutting down (another replica answers a retry), or it \
                     cannot reach its store (Redis) right now; nothing was changed.",
                )
            } else {
                (
                    503,
                    &[ErrorCode::ShuttingDown],
                    "The broker is shutting down; another replica answers a retry.",
                )
            });
        }
        if self.store {
            errors.push((
                500,
                &[ErrorCode::Internal],
                "The broker failed; the cause is in its log.",
            ));
        }
        errors.sort_by_key(|(status, ..)| *status);
        for (status, codes, description) in errors {
            responses.insert(status.to_string(), refusal(description, codes));
        }
        responses.insert(
            "431".into(),
            json!({
                "description": format!(
                    "More than {MAX_HEADER_BYTES} bytes of request line and headers, or more \
                     than {MAX_HEADERS} header fields; no body, and the connection is closed."
                ),
            }),
        );
        let security = match self.auth {
            Auth::None => json!([]),
            Auth::Device => json!([{ "deviceToken": [] }]),
            Auth::Agent => json!([{ "agentToken": [] }]),
            Auth::DeviceOrAgent => json!([{ "deviceToken": [] }, { "agentToken": [] }]),
            Auth::Ticket => json!([{ "streamTicket": [] }]),
        };
        let mut op = json!({
            "operationId": self.id,
            "summary": self.summary,
            "security": security,
            "responses": responses,
        });
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(schema) = self.body {
            op["requestBody"] = json!({ "required": true, "content": json_content(schema) });
        }
        op
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut schemas = Schemas::new();
    let ops = operations(&mut schemas);
    // `ApiError` is referenced by every refusal, not through a Rust type.
    let _ = schemas.answer::<ApiError>();
    // Links from the answers that name a session to every operation on
    // one, so that clients (and the fuzzer's stateful phase) can follow a
    // session from its code.
    let on_a_session: Vec<&str> = ops
        .iter()
        .filter(|op| op.path.contains("{id}"))
        .map(|op| op.id)
        .collect();
    let links = |from: &str| -> Value {
        on_a_session
            .iter()
            .map(|id| {
                let link = json!({ "operationId": id, "parameters": { "id": from } });
                ((*id).to_owned(), link)
            })
            .collect::<Map<_, _>>()
            .into()
    };
    let mut paths = Map::new();
    for op in ops {
        let path = paths.entry(op.path).or_insert_with(|| json!({}));
        let method = op.method;
        let link_from = match op.id {
            "createCode" => Some(("201", "$response.body#/session_id")),
            "redeemCode" => Some(("200", "$response.body#/session/session_id")),
            _ => None,
        };
        path[method] = op.into_json();
        if let Some((status, from)) = link_from {
            path[method]["responses"][status]["links"] = links(from);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Agent Assist broker",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Support codes for visitors, redeemed by agents, with the visitor's consent. \
                 Every non-2xx answer with a body is an `ApiError`. Bodies are at most \
                 {MAX_BODY_BYTES} bytes. Browsers are answered only from the origins a \
                 site allows (CORS); answers under `/v1/` carry `Cache-Control: no-store`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas.components(),
            "securitySchemes": {
                "deviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The `device_token` of `POST /v1/codes` (64 lowercase hex \
                                    digits), for calls about that session.",
                },
                "agentToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "aat_… API token or HS256 JWT",
                    "description": "An agent: an API token from `agent-assist-broker agents \
                                    add`, or an HS256 JWT signed with the site's secret \
                                    (claims `sub`, `name`, `site`, `exp`).",
                },
                "streamTicket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "A stream ticket (`POST /v1/sessions/{id}/ticket`, or \
                                    from the code or the redemption): `EventSource` cannot \
                                    send headers, so the stream's credential is in the URL, \
                                    read-only and short-lived.",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_types_share_no_schema_name_with_different_shapes() {
        let mut s = Schemas::new();
        let _ = operations(&mut s);
        let _ = s.answer::<ApiError>();
        let answers = s.answers.definitions().clone();
        for (name, schema) in s.requests.definitions() {
            if let Some(other) = answers.get(name) {
                assert_eq!(schema, other, "{name} differs between requests and answers");
            }
        }
    }

    /// `ApiJson` refuses any array in a body (serde would read a struct
    /// from one); a request type with a list would need that changed.
    #[test]
    fn no_request_body_has_an_array() {
        fn has_array(v: &Value) -> bool {
            match v {
                Value::Object(o) => {
                    o.get("type")
                        .is_some_and(|t| t.to_string().contains("array"))
                        || o.values().any(has_array)
                }
                Value::Array(a) => a.iter().any(has_array),
                _ => false,
            }
        }
        let mut s = Schemas::new();
        let bodies: Vec<Value> = operations(&mut s)
            .into_iter()
            .filter_map(|op| op.body)
            .collect();
        assert!(bodies.len() >= 4);
        let requests = Value::Object(s.requests.take_definitions(true));
        assert!(!has_array(&requests), "{requests}");
    }

    #[test]
    fn every_refusal_names_codes_of_its_own_status() {
        let mut s = Schemas::new();
        for op in operations(&mut s) {
            let statuses: std::collections::BTreeSet<u16> =
                op.errors.iter().map(|(status, ..)| *status).collect();
            assert_eq!(statuses.len(), op.errors.len(), "{} {}", op.method, op.path);
            for (status, codes, _) in &op.errors {
                for code in *codes {
                    assert_eq!(
                        code.status(),
                        *status,
                        "{} {}: {code:?}",
                        op.method,
                        op.path
                    );
                }
            }
        }
    }
}
