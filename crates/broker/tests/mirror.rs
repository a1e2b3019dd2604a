//! The live mirror's WebSockets: who may open them, what the agent's view
//! receives and in which order, the privacy rules the broker enforces on
//! the visitor's frames, rate and size limits, and closing.

mod common;

use std::time::Duration;

use agent_assist_broker::mirror::capture::Capture;
use agent_assist_protocol::mirror::{
    Down, Node, Op, Page, Up, View, CLOSE_BAD_FRAME, CLOSE_NOT_ACTIVE, CLOSE_REPLACED,
    CLOSE_TOO_FAST, CLOSE_UNAUTHORIZED, MAX_FRAME_BYTES,
};
use agent_assist_protocol::{ApiError, ErrorCode};
use common::{assert_refused, Broker, DEMO_ORIGIN, EVIL_ORIGIN, SHORT_ORIGIN};
use futures_util::{FutureExt, SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A page of the demo site that is shared.
const SHOP: &str = "http://localhost:8080/products/lamp";

/// An active session of the `demo` site.
struct Active {
    id: String,
    device: String,
    agent: String,
}

/// A code of `demo` redeemed by a fresh agent (with `agent`, or an API
/// token when `None`) and allowed by the visitor.
async fn active_with(broker: &Broker, agent: Option<String>) -> Active {
    let created = broker.create("demo").await;
    let agent = match agent {
        Some(agent) => agent,
        None => broker.add_agent("demo", "Dana").await.1,
    };
    broker.redeem(&agent, &created.code).await;
    let res = broker
        .post_consent(&created.session_id, &created.device_token, true)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    Active {
        id: created.session_id,
        device: created.device_token,
        agent,
    }
}

async fn active(broker: &Broker) -> Active {
    active_with(broker, None).await
}

fn ws_url(broker: &Broker, path: &str) -> String {
    format!("{}{path}", broker.base.replacen("http://", "ws://", 1))
}

/// Opens `path` with `origin` (if any); the handshake's error otherwise.
async fn open(broker: &Broker, path: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut request = ws_url(broker, path).into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

fn mirror_path(id: &str) -> String {
    format!("/v1/sessions/{id}/mirror")
}

fn view_path(id: &str) -> String {
    format!("/v1/sessions/{id}/mirror/view")
}

/// The visitor's socket, opened from the demo shop's origin, with `hello`
/// sent as the first frame.
async fn visitor_sending(broker: &Broker, id: &str, hello: Message) -> Ws {
    let mut ws = open(broker, &mirror_path(id), Some(DEMO_ORIGIN))
        .await
        .expect("the visitor's socket opens");
    ws.send(hello).await.expect("hello sent");
    ws
}

fn hello(token: &str) -> Message {
    text(&Up::Hello {
        token: token.into(),
    })
}

fn text(frame: &impl serde::Serialize) -> Message {
    Message::text(serde_json::to_string(frame).unwrap())
}

/// Sends `frame` as JSON text on `ws`.
async fn send(ws: &mut Ws, frame: &impl serde::Serialize) {
    ws.send(text(frame)).await.unwrap();
}

/// The visitor's socket after a welcome; returns it with the welcome's pages.
async fn visitor(broker: &Broker, s: &Active) -> (Ws, Vec<String>) {
    let mut ws = visitor_sending(broker, &s.id, hello(&s.device)).await;
    let welcome: Down = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    let Down::Welcome { pages } = welcome else {
        panic!("expected a welcome, got {welcome:?}")
    };
    (ws, pages)
}

/// The agent's view, with `credential` sent as the hello.
async fn viewer_with(broker: &Broker, id: &str, credential: &str) -> Ws {
    let mut ws = open(broker, &view_path(id), None)
        .await
        .expect("the agent's view opens");
    ws.send(text(&json!({ "t": "hello", "token": credential })))
        .await
        .expect("hello sent");
    ws
}

async fn viewer(broker: &Broker, s: &Active) -> Ws {
    viewer_with(broker, &s.id, &s.agent).await
}

/// What came next on a socket.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Text(String),
    Binary,
    /// A close frame with this code.
    Closed(u16),
    /// The connection ended without a close frame, or failed.
    Ended,
}

/// The next message (pings and pongs skipped); fails the test if none
/// comes within ten seconds.
async fn next(ws: &mut Ws) -> Next {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        return match message {
            Some(Ok(Message::Text(t))) => Next::Text(t.as_str().to_owned()),
            Some(Ok(Message::Binary(_))) => Next::Binary,
            Some(Ok(Message::Close(Some(frame)))) => Next::Closed(frame.code.into()),
            Some(Ok(Message::Close(None))) | Some(Err(_)) | None => Next::Ended,
            Some(Ok(_)) => continue,
        };
    }
}

async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        Next::Text(t) => t,
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn next_view(ws: &mut Ws) -> View {
    let t = next_text(ws).await;
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))
}

async fn assert_closed_with(ws: &mut Ws, code: u16) {
    assert_eq!(next(ws).await, Next::Closed(code));
}

fn presence(online: bool) -> View {
    View::Presence { online }
}

fn el(i: u32, p: u32, name: &str, a: &[(&str, &str)]) -> Node {
    Node {
        i,
        p,
        e: Some(name.into()),
        a: a.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Node::default()
    }
}

fn txt(i: u32, p: u32, x: &str) -> Node {
    Node {
        i,
        p,
        x: Some(x.into()),
        ..Node::default()
    }
}

/// A small page at `url` saying `words`.
fn page(url: &str, words: &str) -> Page {
    Page {
        url: url.into(),
        title: "Lamp".into(),
        w: 1024,
        h: 768,
        x: 0,
        y: 0,
        nodes: vec![
            el(1, 0, "html", &[]),
            el(2, 1, "body", &[("class", "shop")]),
            el(3, 2, "p", &[]),
            txt(4, 3, words),
        ],
        sheets: vec![],
    }
}

fn ops_frame(ops: Vec<Op>) -> Up {
    Up::Ops { ops }
}

#[tokio::test]
async fn sockets_from_other_origins_or_for_unknown_sessions_are_refused_before_upgrading() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    for origin in [EVIL_ORIGIN, SHORT_ORIGIN] {
        let Err(WsError::Http(res)) = open(&broker, &mirror_path(&s.id), Some(origin)).await else {
            panic!("the handshake from {origin} should be refused")
        };
        assert_eq!(res.status().as_u16(), 403);
        let body: ApiError = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
        assert_eq!(body.error, ErrorCode::OriginNotAllowed);
    }
    // The agent's view too, unless the page is the broker's own.
    let Err(WsError::Http(res)) = open(&broker, &view_path(&s.id), Some(EVIL_ORIGIN)).await else {
        panic!("the view's handshake from another site should be refused")
    };
    assert_eq!(res.status().as_u16(), 403);
    let own = broker.base.clone();
    let mut ws = open(&broker, &view_path(&s.id), Some(&own)).await.unwrap();
    ws.send(hello(&s.agent)).await.unwrap();
    assert_eq!(next_view(&mut ws).await, presence(false));

    for path in [
        mirror_path("0123456789abcdef0123456789abcdef"),
        view_path("0123456789abcdef0123456789abcdef"),
        mirror_path("nope"),
    ] {
        let Err(WsError::Http(res)) = open(&broker, &path, Some(DEMO_ORIGIN)).await else {
            panic!("{path} should not open")
        };
        assert_eq!(res.status().as_u16(), 404, "{path}");
        let body: ApiError = serde_json::from_slice(res.body().as_deref().unwrap()).unwrap();
        assert_eq!(body.error, ErrorCode::UnknownSession);
    }
    // A plain request gets a JSON error, not an upgrade.
    for path in [mirror_path(&s.id), view_path(&s.id)] {
        let res = broker.client.get(broker.url(&path)).send().await.unwrap();
        let message = assert_refused(res, ErrorCode::InvalidField).await;
        assert!(message.contains("WebSocket"), "{message}");
    }
}

#[tokio::test]
async fn the_visitors_hello_must_carry_this_sessions_device_token() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let other = active(&broker).await;
    for first in [
        hello(&other.device),
        hello(&s.agent),
        hello("not-a-token"),
        text(&ops_frame(vec![Op::Pointer { x: 1, y: 1 }])),
        text(&Up::Page(page(SHOP, "hi"))),
        Message::text("{\"t\":\"hello\"}"),
        Message::text("hello"),
        Message::binary(s.device.clone().into_bytes()),
    ] {
        let mut ws = visitor_sending(&broker, &s.id, first.clone()).await;
        assert_closed_with(&mut ws, CLOSE_UNAUTHORIZED).await;
    }
    // The agent's view does not take a device token either.
    let mut ws = viewer_with(&broker, &s.id, &s.device).await;
    assert_closed_with(&mut ws, CLOSE_UNAUTHORIZED).await;
    // With the right one, the welcome follows.
    visitor(&broker, &s).await;
}

#[tokio::test]
async fn only_the_agent_who_redeemed_the_session_may_view_it() {
    let broker = Broker::start().await;
    let dana = broker.jwt("demo", "dana", "Dana", 600);
    let s = active_with(&broker, Some(dana)).await;
    let (_, stranger) = broker.add_agent("demo", "Eve").await;
    for credential in [
        broker.jwt("demo", "eve", "Eve", 600),
        broker.jwt("demo", "dana", "Dana", -60),
        stranger,
        "aat_nope".to_owned(),
        String::new(),
    ] {
        let mut ws = viewer_with(&broker, &s.id, &credential).await;
        assert_closed_with(&mut ws, CLOSE_UNAUTHORIZED).await;
    }
    let mut ws = open(&broker, &view_path(&s.id), None).await.unwrap();
    ws.send(Message::text("{\"t\":\"view\"}")).await.unwrap();
    assert_closed_with(&mut ws, CLOSE_UNAUTHORIZED).await;

    let mut ws = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut ws).await, presence(false));
}

#[tokio::test]
async fn sockets_open_only_while_the_session_is_active() {
    let broker = Broker::start().await;
    let (created, agent, _) = broker.authorizing("demo").await;
    let mut ws = visitor_sending(&broker, &created.session_id, hello(&created.device_token)).await;
    assert_closed_with(&mut ws, CLOSE_NOT_ACTIVE).await;
    let mut ws = viewer_with(&broker, &created.session_id, &agent).await;
    assert_closed_with(&mut ws, CLOSE_NOT_ACTIVE).await;
    // A wrong token is still told so first.
    let mut ws = visitor_sending(&broker, &created.session_id, hello(&"0".repeat(64))).await;
    assert_closed_with(&mut ws, CLOSE_UNAUTHORIZED).await;

    // Once ended, too.
    let s = active(&broker).await;
    broker.post_end(&s.id, &s.device).await;
    let mut ws = visitor_sending(&broker, &s.id, hello(&s.device)).await;
    assert_closed_with(&mut ws, CLOSE_NOT_ACTIVE).await;
}

#[tokio::test]
async fn the_agent_sees_the_visitors_frames_in_order_with_presence() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));

    let (mut page_ws, pages) = visitor(&broker, &s).await;
    assert_eq!(pages, vec!["/*", "!/account/*"], "the site's shared pages");
    assert_eq!(next_view(&mut view).await, presence(true));

    let first = page(SHOP, "A lamp");
    send(&mut page_ws, &Up::Page(first.clone())).await;
    let changes: Vec<Vec<Op>> = (0..20)
        .map(|n| {
            vec![
                Op::Text {
                    i: 4,
                    x: format!("A lamp, {n} left"),
                },
                Op::Pointer { x: n, y: 2 * n },
            ]
        })
        .collect();
    for change in &changes {
        send(&mut page_ws, &ops_frame(change.clone())).await;
    }
    assert_eq!(next_view(&mut view).await, View::Page(first));
    for change in changes {
        assert_eq!(next_view(&mut view).await, View::Ops { ops: change });
    }
    // The visitor's page goes: the agent is told.
    page_ws.close(None).await.unwrap();
    assert_eq!(next_view(&mut view).await, presence(false));
}

#[tokio::test]
async fn a_view_that_joins_late_gets_presence_the_page_and_the_changes_since_at_once() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let (mut page_ws, _) = visitor(&broker, &s).await;
    // An earlier page is replaced by the later one, with its changes.
    send(&mut page_ws, &Up::Page(page(SHOP, "old"))).await;
    send(
        &mut page_ws,
        &ops_frame(vec![Op::Scroll { i: 0, x: 0, y: 5 }]),
    )
    .await;
    let latest = page("http://localhost:8080/products/desk", "A desk");
    send(&mut page_ws, &Up::Page(latest.clone())).await;
    let change = vec![
        Op::Kids {
            i: 3,
            c: vec![4, 5],
            n: vec![txt(5, 3, " (sold out)")],
        },
        Op::Value {
            i: 2,
            v: Some("x".into()),
            c: None,
        },
    ];
    send(&mut page_ws, &ops_frame(change.clone())).await;
    // Two views in turn: the first one's last frame proves the visitor's
    // frames have all arrived.
    let mut early = viewer(&broker, &s).await;
    let mut seen = Vec::new();
    while seen.last()
        != Some(&View::Ops {
            ops: change.clone(),
        })
    {
        seen.push(next_view(&mut early).await);
    }
    assert_eq!(seen[0], presence(true));
    let mut late = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut late).await, presence(true));
    assert_eq!(next_view(&mut late).await, View::Page(latest));
    assert_eq!(next_view(&mut late).await, View::Ops { ops: change });
    // Then the live frames, to both.
    let live = vec![Op::Click { x: 3, y: 4 }];
    send(&mut page_ws, &ops_frame(live.clone())).await;
    assert_eq!(next_view(&mut late).await, View::Ops { ops: live.clone() });
    assert_eq!(next_view(&mut early).await, View::Ops { ops: live });
}

#[tokio::test]
async fn pages_the_site_does_not_share_reach_the_agent_as_hidden() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));
    let (mut page_ws, _) = visitor(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));

    let private = page("http://localhost:8080/account/cards", "Visa ending 4242");
    send(&mut page_ws, &Up::Page(private)).await;
    // What the page changes next is dropped too.
    page_ws
        .send(text(&ops_frame(vec![Op::Text {
            i: 4,
            x: "Mastercard ending 5555".into(),
        }])))
        .await
        .unwrap();
    let shared = page(SHOP, "A lamp");
    send(&mut page_ws, &Up::Page(shared.clone())).await;

    assert_eq!(next_text(&mut view).await, r#"{"t":"hidden"}"#);
    assert_eq!(next_view(&mut view).await, View::Page(shared));
}

#[tokio::test]
async fn frames_that_break_the_privacy_rules_close_the_socket_and_go_nowhere() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));

    let mut script = page(SHOP, "hi");
    script.nodes.push(el(5, 2, "script", &[]));
    let mut onclick = page(SHOP, "hi");
    onclick.nodes[2]
        .a
        .push(("onclick".into(), "steal()".into()));
    let mut js_link = page(SHOP, "hi");
    js_link
        .nodes
        .push(el(5, 2, "a", &[("href", "javascript:steal()")]));
    let bad: Vec<Up> = vec![
        Up::Page(script),
        Up::Page(onclick),
        Up::Page(js_link),
        Up::Page(page("https://evil.example/", "hi")),
        ops_frame(vec![Op::Kids {
            i: 2,
            c: vec![9],
            n: vec![el(9, 2, "iframe", &[("src", "https://evil.example")])],
        }]),
        ops_frame(vec![Op::Attr {
            i: 2,
            k: "onmouseover".into(),
            v: Some("steal()".into()),
        }]),
        Up::Hello {
            token: s.device.clone(),
        },
    ];
    for (n, frame) in bad.into_iter().enumerate() {
        let (mut page_ws, _) = visitor(&broker, &s).await;
        assert_eq!(next_view(&mut view).await, presence(true));
        // A good page first, so that changes have something to apply to.
        let good = page(SHOP, &format!("good {n}"));
        send(&mut page_ws, &Up::Page(good.clone())).await;
        assert_eq!(next_view(&mut view).await, View::Page(good));
        send(&mut page_ws, &frame).await;
        assert_closed_with(&mut page_ws, CLOSE_BAD_FRAME).await;
        // The agent hears only that the page went.
        assert_eq!(next_view(&mut view).await, presence(false), "{frame:?}");
    }
    // Unknown fields and binary frames are refused too.
    for frame in [
        Message::text(
            r#"{"t":"page","url":"http://localhost:8080/","title":"","w":1,"h":1,"x":0,"y":0,"nodes":[],"onload":"x"}"#,
        ),
        Message::binary(vec![1, 2, 3]),
        Message::text("not json"),
    ] {
        let (mut page_ws, _) = visitor(&broker, &s).await;
        assert_eq!(next_view(&mut view).await, presence(true));
        page_ws.send(frame).await.unwrap();
        assert_closed_with(&mut page_ws, CLOSE_BAD_FRAME).await;
        assert_eq!(next_view(&mut view).await, presence(false));
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_the_socket() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));
    let (mut page_ws, _) = visitor(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));
    // The broker may stop reading (and close) before the whole frame is sent.
    let _ = page_ws
        .send(Message::text("x".repeat(MAX_FRAME_BYTES + 1)))
        .await;
    let end = next(&mut page_ws).await;
    assert!(
        matches!(end, Next::Closed(CLOSE_BAD_FRAME) | Next::Ended),
        "{end:?}"
    );
    assert_eq!(next_view(&mut view).await, presence(false));
}

#[tokio::test]
async fn a_page_that_sends_too_fast_is_closed() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let (mut page_ws, _) = visitor(&broker, &s).await;
    let frame = text(&ops_frame(vec![Op::Pointer { x: 1, y: 1 }]));
    // Far more than the burst; stop once the broker has answered.
    let mut answer = None;
    'flood: for _ in 0..1000 {
        for _ in 0..50 {
            if page_ws.send(frame.clone()).await.is_err() {
                break 'flood;
            }
        }
        if let Some(message) = page_ws.next().now_or_never() {
            answer = Some(message);
            break;
        }
    }
    let end = match answer {
        Some(Some(Ok(Message::Close(Some(frame))))) => Next::Closed(frame.code.into()),
        Some(other) => panic!("unexpected {other:?}"),
        None => next(&mut page_ws).await,
    };
    assert_eq!(end, Next::Closed(CLOSE_TOO_FAST));
}

#[tokio::test]
async fn too_many_changes_ask_the_page_for_a_fresh_snapshot() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let (mut page_ws, _) = visitor(&broker, &s).await;
    send(&mut page_ws, &Up::Page(page(SHOP, "A lamp"))).await;
    let long = "a".repeat(700 << 10);
    for _ in 0..3 {
        page_ws
            .send(text(&ops_frame(vec![Op::Text {
                i: 4,
                x: long.clone(),
            }])))
            .await
            .unwrap();
    }
    assert_eq!(next_text(&mut page_ws).await, r#"{"t":"resync"}"#);
    // Until the fresh page comes, an agent who joins sees only presence.
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));
    let fresh = page(SHOP, "A lamp, again");
    send(&mut page_ws, &Up::Page(fresh.clone())).await;
    assert_eq!(next_view(&mut view).await, View::Page(fresh));
}

#[tokio::test]
async fn the_agents_view_is_read_only() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));
    view.send(text(&ops_frame(vec![Op::Click { x: 1, y: 1 }])))
        .await
        .unwrap();
    assert_closed_with(&mut view, CLOSE_BAD_FRAME).await;
}

#[tokio::test]
async fn a_newer_visitor_connection_replaces_the_older() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));
    let (mut first, _) = visitor(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));
    let (mut second, _) = visitor(&broker, &s).await;
    assert_closed_with(&mut first, CLOSE_REPLACED).await;
    // The visitor never went offline: the next frame is the new page.
    let fresh = page(SHOP, "after a reload");
    send(&mut second, &Up::Page(fresh.clone())).await;
    assert_eq!(next_view(&mut view).await, View::Page(fresh));
}

#[tokio::test]
async fn ending_the_session_closes_every_socket_and_forgets_the_page() {
    let broker = Broker::start().await;
    for by_agent in [true, false] {
        let s = active(&broker).await;
        let (mut page_ws, _) = visitor(&broker, &s).await;
        send(&mut page_ws, &Up::Page(page(SHOP, "A lamp"))).await;
        let mut view = viewer(&broker, &s).await;
        assert_eq!(next_view(&mut view).await, presence(true));
        assert!(matches!(next_view(&mut view).await, View::Page(_)));
        assert_eq!(broker.state.mirrors.count(), 1);

        let who = if by_agent { &s.agent } else { &s.device };
        let res = broker.post_end(&s.id, who).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_closed_with(&mut page_ws, CLOSE_NOT_ACTIVE).await;
        assert_closed_with(&mut view, CLOSE_NOT_ACTIVE).await;
        assert_eq!(broker.state.mirrors.count(), 0, "the page is forgotten");
    }
}

#[tokio::test]
async fn shutting_down_closes_the_sockets() {
    let broker = Broker::start().await;
    let s = active(&broker).await;
    let (mut page_ws, _) = visitor(&broker, &s).await;
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));
    tokio::time::timeout(Duration::from_secs(10), broker.stop())
        .await
        .expect("the broker stops with sockets open");
    assert_closed_with(&mut page_ws, 1001).await;
    assert_closed_with(&mut view, 1001).await;
}

#[tokio::test]
async fn the_capture_file_holds_every_frame_received() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.log");
    let capture = Capture::open(&path).unwrap();
    let broker = Broker::start_with(|state| state.with_mirror_capture(capture)).await;
    let s = active(&broker).await;

    // One step at a time, each seen to arrive, so the order is known.
    let view_hello = json!({ "t": "hello", "token": s.agent }).to_string();
    let mut view = viewer(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(false));
    let visitor_hello = serde_json::to_string(&Up::Hello {
        token: s.device.clone(),
    })
    .unwrap();
    let (mut page_ws, _) = visitor(&broker, &s).await;
    assert_eq!(next_view(&mut view).await, presence(true));
    let private = serde_json::to_string(&Up::Page(page(
        "http://localhost:8080/account/cards",
        "Visa ending 4242",
    )))
    .unwrap();
    page_ws.send(Message::text(private.clone())).await.unwrap();
    assert_eq!(next_view(&mut view).await, View::Hidden);
    view.send(Message::text("agent typing")).await.unwrap();
    assert_closed_with(&mut view, CLOSE_BAD_FRAME).await;
    page_ws
        .send(Message::binary(vec![0xff, 0x00, b'x']))
        .await
        .unwrap();
    assert_closed_with(&mut page_ws, CLOSE_BAD_FRAME).await;

    let mut want = Vec::new();
    for line in [
        view_hello.as_bytes(),
        visitor_hello.as_bytes(),
        private.as_bytes(),
        b"agent typing",
        &[0xff, 0x00, b'x'],
    ] {
        want.extend_from_slice(line);
        want.push(b'\n');
    }
    assert_eq!(std::fs::read(&path).unwrap(), want);
}

#[tokio::test]
async fn the_agent_on_another_replica_sees_the_visitors_page_live() {
    // Two replicas on one Redis; the visitor's page is connected to A, the
    // agent's view to B.
    let dir = tempfile::tempdir().unwrap();
    let redis = common::redis::RedisServer::start_tcp(dir.path());
    let clock = std::sync::Arc::new(agent_assist_broker::clock::ManualClock::new(common::T0));
    let a = Broker::start_redis(&redis.url(), std::sync::Arc::clone(&clock)).await;
    let b = Broker::start_redis(&redis.url(), clock).await;
    let s = active(&a).await;
    let (mut page_ws, _) = visitor(&a, &s).await;
    let first = page(SHOP, "A lamp");
    send(&mut page_ws, &Up::Page(first.clone())).await;
    let change = vec![Op::Scroll { i: 0, x: 0, y: 40 }];
    send(&mut page_ws, &ops_frame(change.clone())).await;

    // B has no copy yet: it asks, and A's whole copy arrives in order.
    let mut view = viewer(&b, &s).await;
    let mut seen = vec![next_view(&mut view).await];
    while seen.last()
        != Some(&View::Ops {
            ops: change.clone(),
        })
    {
        seen.push(next_view(&mut view).await);
    }
    let from_copy: Vec<&View> = seen.iter().filter(|v| **v != presence(false)).collect();
    assert_eq!(
        from_copy,
        vec![
            &presence(true),
            &View::Page(first),
            &View::Ops { ops: change }
        ]
    );

    // Then every frame live, and the visitor leaving.
    let live = vec![Op::Click { x: 3, y: 4 }];
    send(&mut page_ws, &ops_frame(live.clone())).await;
    assert_eq!(next_view(&mut view).await, View::Ops { ops: live });
    let desk = page("http://localhost:8080/products/desk", "A desk");
    send(&mut page_ws, &Up::Page(desk.clone())).await;
    assert_eq!(next_view(&mut view).await, View::Page(desk.clone()));
    // A second view on B is served from B's copy at once.
    let mut late = viewer(&b, &s).await;
    assert_eq!(next_view(&mut late).await, presence(true));
    assert_eq!(next_view(&mut late).await, View::Page(desk));
    page_ws.close(None).await.unwrap();
    assert_eq!(next_view(&mut view).await, presence(false));
    assert_eq!(next_view(&mut late).await, presence(false));

    // Ending the session through A closes B's views.
    let res = a.post_end(&s.id, &s.agent).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_closed_with(&mut view, CLOSE_NOT_ACTIVE).await;
    assert_closed_with(&mut late, CLOSE_NOT_ACTIVE).await;
}
