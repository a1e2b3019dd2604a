//! Faults on the broker binary, under traffic: SIGKILL while codes are
//! created and redeemed, SIGTERM under load, and 2,000 event streams at
//! once. Each checks what a user would notice: an acknowledged code or
//! session lost, a request cut off without an answer, a stream that never
//! hears of its session's change.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_assist_broker::store::sqlite::SqliteStore;
use agent_assist_broker::store::Store;
use agent_assist_protocol::{
    ApiError, CreateCodeResponse, ErrorCode, RedeemResponse, SessionState, SessionStatus,
};
use common::process::{add_agent, BrokerProcess};
use common::SseStream;
use serde_json::json;
use tokio::task::JoinSet;

/// Waits until `done()` holds, checking every few milliseconds; fails the
/// test after a minute.
async fn until(done: impl Fn() -> bool, what: &str) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not within a minute: {what}"));
}

/// What the clients were told before the kill.
#[derive(Default)]
struct Acknowledged {
    created: Vec<CreateCodeResponse>,
    redeemed: HashMap<String, RedeemResponse>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_traffic_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let token = add_agent(dir.path(), "Dana");
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    let client = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));

    // Eight clients, each creating a code and redeeming every other one,
    // until the kill makes their requests fail.
    let mut clients = JoinSet::new();
    for i in 0..8 {
        let (client, stop, answered, base, token) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&answered),
            broker.base.clone(),
            token.clone(),
        );
        clients.spawn(async move {
            let mut acked = Acknowledged::default();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let res = client
                    .post(format!("{base}/v1/codes"))
                    .json(&json!({ "site_key": "demo" }))
                    .send()
                    .await;
                let Ok(res) = res else { break };
                let Ok(created) = res.json::<CreateCodeResponse>().await else {
                    break;
                };
                acked.created.push(created.clone());
                answered.fetch_add(1, Ordering::Relaxed);
                n += 1;
                if (n + i) % 2 == 0 {
                    let res = client
                        .post(format!("{base}/v1/agent/redeem"))
                        .bearer_auth(&token)
                        .json(&json!({ "code": created.code }))
                        .send()
                        .await;
                    let Ok(res) = res else { break };
                    let Ok(redeemed) = res.json::<RedeemResponse>().await else {
                        break;
                    };
                    acked.redeemed.insert(created.session_id.clone(), redeemed);
                }
            }
            acked
        });
    }
    // Kill once a good amount of traffic has been acknowledged, with the
    // clients still sending.
    until(
        || answered.load(Ordering::Relaxed) >= 400,
        "400 codes answered",
    )
    .await;
    broker.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Acknowledged::default();
    while let Some(done) = clients.join_next().await {
        let done = done.unwrap();
        acked.created.extend(done.created);
        acked.redeemed.extend(done.redeemed);
    }
    assert!(acked.created.len() >= 400, "{}", acked.created.len());
    assert!(!acked.redeemed.is_empty());

    // Restarted on the same file, every acknowledged code and session is
    // there, in the state its last answer gave it.
    let broker = BrokerProcess::start(dir.path(), &[]);
    let mut codes = std::collections::HashSet::new();
    for created in &acked.created {
        let res = client
            .get(broker.url(&format!("/v1/sessions/{}", created.session_id)))
            .bearer_auth(&created.device_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "session {} lost", created.session_id);
        let status: SessionStatus = res.json().await.unwrap();
        match acked.redeemed.get(&created.session_id) {
            Some(redeemed) => {
                assert_eq!(status.state, SessionState::Authorizing);
                assert_eq!(status.agent, redeemed.session.agent);
            }
            // A redemption in flight at the kill may have committed
            // without its answer arriving; nothing else may have happened.
            None => assert!(
                matches!(
                    status.state,
                    SessionState::Pending | SessionState::Authorizing
                ),
                "{status:?}"
            ),
        }
        if status.state == SessionState::Pending {
            assert!(codes.insert(created.code.clone()), "a live code twice");
        }
    }
    // A code still pending is still redeemable through the restarted broker.
    let pending = acked
        .created
        .iter()
        .find(|c| !acked.redeemed.contains_key(&c.session_id))
        .expect("some code was never redeemed");
    let res = client
        .post(broker.url("/v1/agent/redeem"))
        .bearer_auth(&token)
        .json(&json!({ "code": pending.code }))
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == 200 || res.status() == 404,
        "{}",
        res.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request_and_keeps_every_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &["--drain-secs", "10"]);
    let client = reqwest::Client::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = JoinSet::new();
    for _ in 0..8 {
        let (client, base, answered) = (client.clone(), broker.base.clone(), Arc::clone(&answered));
        clients.spawn(async move {
            let (mut created, mut refused) = (Vec::new(), 0u32);
            loop {
                let res = client
                    .post(format!("{base}/v1/codes"))
                    .json(&json!({ "site_key": "demo" }))
                    .send()
                    .await;
                // Once the listener is closed, connections are refused:
                // the broker is gone, which is what clients then see.
                let Ok(res) = res else { break };
                match res.status().as_u16() {
                    201 => {
                        created.push(res.json::<CreateCodeResponse>().await.unwrap());
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        let e: ApiError = res.json().await.unwrap();
                        assert_eq!(e.error, ErrorCode::ShuttingDown);
                        refused += 1;
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            (created, refused)
        });
    }
    until(
        || answered.load(Ordering::Relaxed) >= 300,
        "300 codes answered",
    )
    .await;
    broker.signal("TERM");
    let status = broker.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
    let mut created = Vec::new();
    while let Some(done) = clients.join_next().await {
        let (mine, refused) = done.unwrap();
        created.extend(mine);
        eprintln!("a client was refused {refused} times while the broker drained");
    }
    // Every code answered 201 is stored, live.
    let store = SqliteStore::open(dir.path().join("broker.sqlite3")).unwrap();
    for c in &created {
        assert!(
            store
                .find_live_code("demo", &c.code, c.expires_at - 1)
                .await
                .unwrap()
                .is_some(),
            "code of session {} lost",
            c.session_id
        );
    }
    assert_eq!(store.count_sessions().await.unwrap(), created.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_event_streams_each_hear_their_session_and_close_on_shutdown() {
    const STREAMS: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path(), &[]);
    // One connection per stream, as 2,000 browsers would have.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let files_before = broker.open_files();
    let rss_before = broker.rss_kib();

    let mut sessions = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let res = client
            .post(broker.url("/v1/codes"))
            .json(&json!({ "site_key": "demo" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        sessions.push(res.json::<CreateCodeResponse>().await.unwrap());
    }
    let mut streams = Vec::with_capacity(STREAMS);
    for s in &sessions {
        let res = client
            .get(broker.url(&format!("/v1/sessions/{}/events", s.session_id)))
            .query(&[("ticket", &s.stream_ticket)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut stream = SseStream::new(res);
        let first = stream.next().await.expect("the session's first event");
        assert_eq!(first.status().state, SessionState::Pending);
        streams.push(stream);
    }
    let files_open = broker.open_files();
    let rss_open = broker.rss_kib();
    eprintln!(
        "{STREAMS} streams: {} → {files_open} open files, {rss_before} → {rss_open} KiB RSS",
        files_before
    );
    // One socket per stream, and little else.
    assert!(
        files_open <= files_before + STREAMS + 64,
        "{files_before} → {files_open} open files"
    );
    assert!(
        rss_open - rss_before < 64 * 1024,
        "{rss_before} → {rss_open} KiB for {STREAMS} streams"
    );

    // Half the sessions are cancelled: each of those streams hears it.
    for (s, stream) in sessions.iter().zip(streams.iter_mut()).step_by(2) {
        let res = client
            .post(broker.url(&format!("/v1/sessions/{}/cancel", s.session_id)))
            .bearer_auth(&s.device_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let event = stream.next().await.expect("the cancellation");
        assert_eq!(event.status().state, SessionState::Ended);
    }
    // The other half are idle; a shutdown closes them all.
    broker.signal("TERM");
    for stream in streams.iter_mut().skip(1).step_by(2) {
        stream.assert_closed().await;
    }
    let status = broker.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{status:?}");
}
