//! The HTTP server's own defences, over raw TCP where a well-behaved client
//! cannot show them: huge headers, clients too slow to send their headers
//! or their body, a shutdown with requests in flight; and the security
//! headers on what the broker serves.

mod common;

use std::time::Duration;

use agent_assist_broker::server::{HttpLimits, MAX_HEADER_BYTES};
use agent_assist_protocol::{ApiError, CreateCodeResponse, ErrorCode};
use common::{assert_refused, Broker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A bound for waits that should end much sooner: a broken defence fails
/// the test here instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn limits(header: u64, request: u64, drain: u64) -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_secs(header),
        request_timeout: Duration::from_secs(request),
        drain: Duration::from_secs(drain),
    }
}

async fn connect(broker: &Broker) -> TcpStream {
    let addr = broker.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Everything the server sends until it closes the connection.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
fn status(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"))
}

/// The JSON body of a raw answer.
fn json_body(answer: &str) -> ApiError {
    let body = answer.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

/// The head of a code request whose body is `len` bytes long.
fn create_head(len: usize) -> String {
    format!(
        "POST /v1/codes HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n\r\n"
    )
}

const CREATE_BODY: &str = r#"{"site_key":"demo"}"#;

#[tokio::test]
async fn huge_headers_are_answered_431_and_nothing_changes() {
    let broker = Broker::start().await;
    let before = broker.count_sessions().await;

    // One header far over the limit.
    let mut stream = connect(&broker).await;
    let big = "a".repeat(MAX_HEADER_BYTES + 1024);
    let request = format!(
        "POST /v1/codes HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Padding: {big}\r\n\r\n{CREATE_BODY}",
        CREATE_BODY.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(status(&read_to_close(&mut stream).await), 431);

    // Many small headers.
    let mut stream = connect(&broker).await;
    let mut request = String::from("GET /healthz HTTP/1.1\r\nHost: test\r\n");
    for i in 0..200 {
        request.push_str(&format!("X-Header-{i}: {i}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(status(&read_to_close(&mut stream).await), 431);

    assert_eq!(broker.count_sessions().await, before, "nothing was stored");
    // The broker serves the next client as usual.
    broker.create("demo").await;
}

#[tokio::test]
async fn a_client_too_slow_with_its_headers_is_disconnected() {
    let broker = Broker::start_with(|s| s.with_http_limits(limits(1, 30, 5))).await;
    let mut stream = connect(&broker).await;
    // Half a request line, then nothing: a slowloris client.
    stream.write_all(b"POST /v1/co").await.unwrap();
    let answer = read_to_close(&mut stream).await;
    assert!(
        answer.is_empty() || status(&answer) == 408,
        "closed without a route running: {answer:?}"
    );
    // An idle connection is closed the same way.
    let mut idle = connect(&broker).await;
    assert_eq!(read_to_close(&mut idle).await, "");
    assert_eq!(broker.count_sessions().await, 0);
}

#[tokio::test]
async fn a_body_too_slow_is_answered_408_and_nothing_is_stored() {
    let broker = Broker::start_with(|s| s.with_http_limits(limits(10, 1, 5))).await;
    let mut stream = connect(&broker).await;
    let head = create_head(CREATE_BODY.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    // Half the body, and the rest never comes.
    stream
        .write_all(&CREATE_BODY.as_bytes()[..8])
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(PATIENCE, stream.read(&mut answer))
        .await
        .expect("an answer comes")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert_eq!(status(&answer), 408, "{answer}");
    assert_eq!(json_body(&answer).error, ErrorCode::RequestTimeout);
    assert_eq!(broker.count_sessions().await, 0, "nothing was stored");
}

/// SIGTERM's path, in process: a request in flight when the shutdown
/// begins is answered normally and its code stored; requests that arrive
/// meanwhile are answered 503 `shutting_down`; the server then stops.
#[tokio::test]
async fn a_shutdown_finishes_requests_in_flight_and_refuses_new_ones() {
    let mut broker = Broker::start_with(|s| s.with_http_limits(limits(10, 30, 30))).await;
    // A code request whose body is still on its way.
    let mut in_flight = connect(&broker).await;
    let head = create_head(CREATE_BODY.len());
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight
        .write_all(&CREATE_BODY.as_bytes()[..8])
        .await
        .unwrap();
    // Wait until the broker counts it, then shut down.
    tokio::time::timeout(PATIENCE, async {
        while broker.state.drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the request is in flight");
    broker.begin_stop();

    // New requests, on new connections, are refused with a clear answer.
    let refused = tokio::time::timeout(PATIENCE, async {
        loop {
            let res = broker
                .client
                .post(broker.url("/v1/codes"))
                .json(&serde_json::json!({ "site_key": "demo" }))
                .send()
                .await
                .expect("the draining broker still answers");
            if res.status() != 201 {
                break res;
            }
        }
    })
    .await
    .expect("the broker starts refusing");
    assert_eq!(refused.headers()["connection"], "close");
    assert_refused(refused, ErrorCode::ShuttingDown).await;
    let refused_count = broker.count_sessions().await;

    // The request in flight completes and gets its code.
    in_flight
        .write_all(&CREATE_BODY.as_bytes()[8..])
        .await
        .unwrap();
    let answer = read_to_close(&mut in_flight).await;
    assert_eq!(status(&answer), 201, "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let created: CreateCodeResponse = serde_json::from_str(body).unwrap();
    assert!(answer.to_ascii_lowercase().contains("connection: close"));

    let state = broker.state.clone();
    let dir = tokio::time::timeout(PATIENCE, broker.stop())
        .await
        .expect("the server stops once the request is answered");
    assert_eq!(
        state.store.count_sessions().await.unwrap(),
        refused_count + 1,
        "the code answered during the drain is stored"
    );
    assert!(state
        .find_live_code("demo", &created.code)
        .await
        .unwrap()
        .is_some());
    drop(dir);
}

#[tokio::test]
async fn a_shutdown_ends_at_the_drain_deadline_even_with_a_stuck_request() {
    let mut broker = Broker::start_with(|s| s.with_http_limits(limits(10, 600, 1))).await;
    let mut stuck = connect(&broker).await;
    let head = create_head(CREATE_BODY.len());
    stuck.write_all(head.as_bytes()).await.unwrap();
    stuck.write_all(b"{").await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        while broker.state.drain.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the request is in flight");
    broker.begin_stop();
    let state = broker.state.clone();
    tokio::time::timeout(PATIENCE, broker.stop())
        .await
        .expect("the server stops by its drain deadline");
    assert_eq!(state.store.count_sessions().await.unwrap(), 0);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let www = tempfile::tempdir().unwrap();
    for page in ["index.html", "agent.html", "mirror.html"] {
        std::fs::write(www.path().join(page), "<!doctype html><title>t</title>").unwrap();
    }
    let sdk = tempfile::tempdir().unwrap();
    std::fs::write(sdk.path().join("agent-assist.js"), "void 0;").unwrap();
    let (www_path, sdk_path) = (www.path().to_owned(), sdk.path().to_owned());
    let broker = Broker::start_with(move |s| s.with_www(www_path).with_sdk(sdk_path)).await;
    let get = |path: &'static str| {
        let req = broker.client.get(broker.url(path));
        async move { req.send().await.expect("request") }
    };

    let health = get("/healthz").await;
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(health.headers()["referrer-policy"], "no-referrer");
    // API answers, errors too: a code or token never sits in a cache.
    let api = get("/v1/sessions/nope").await;
    assert_eq!(api.headers()["cache-control"], "no-store");
    assert_eq!(api.headers()["x-content-type-options"], "nosniff");

    let console = get("/agent.html").await;
    let csp = console.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert_eq!(console.headers()["x-frame-options"], "DENY");

    let mirror = get("/mirror.html").await;
    let csp = mirror.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'self'"), "{csp}");
    assert!(mirror.headers().get("x-frame-options").is_none());

    let shop = get("/").await;
    let csp = shop.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");

    // The bundle other sites load: typed and nosniff, no page policy.
    let bundle = get("/sdk/agent-assist.js").await;
    assert_eq!(bundle.headers()["x-content-type-options"], "nosniff");
    assert!(bundle.headers().get("content-security-policy").is_none());
    assert!(bundle.headers().get("x-frame-options").is_none());
}
