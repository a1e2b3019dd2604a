//! Several broker replicas on one Redis: codes, sessions, events and
//! limits are shared, races have one winner, and Redis going away gives
//! clear 503s until it is back, without restarting a broker.
//!
//! Each test starts a redis-server of its own on a loopback port (see
//! `common/redis.rs`) and two brokers on it, with one clock.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_assist_broker::clock::ManualClock;
use agent_assist_protocol::{CreateCodeResponse, ErrorCode, SessionState};
use common::redis::RedisServer;
use common::{assert_refused, Broker, DEMO_ORIGIN, T0};
use reqwest::StatusCode;
use serde_json::json;

/// A Redis server and two replicas on it.
async fn two_replicas(dir: &std::path::Path) -> (RedisServer, Broker, Broker) {
    let redis = RedisServer::start_tcp(dir);
    let clock = Arc::new(ManualClock::new(T0));
    let a = Broker::start_redis(&redis.url(), Arc::clone(&clock)).await;
    let b = Broker::start_redis(&redis.url(), clock).await;
    (redis, a, b)
}

#[tokio::test]
async fn a_code_made_on_one_replica_is_redeemed_on_the_other_and_both_streams_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, a, b) = two_replicas(dir.path()).await;
    let created = a.create("demo").await;
    // The visitor's stream is open on A; the agent works through B.
    let mut visitor = a
        .events(&created.session_id, &created.stream_ticket, None)
        .await;
    assert_eq!(
        visitor.next().await.unwrap().status().state,
        SessionState::Pending
    );
    let (_, token) = b.add_agent("demo", "Dana").await;
    let redeemed = b.redeem(&token, &created.code).await;
    assert_eq!(redeemed.session.state, SessionState::Authorizing);
    let seen = visitor.next().await.unwrap();
    assert_eq!(
        (seen.seq(), seen.status().state),
        (2, SessionState::Authorizing)
    );
    assert_eq!(seen.status().agent.unwrap().name, "Dana");

    // The agent's stream is open on B; the visitor allows through A.
    let mut agent = b
        .events(&created.session_id, &redeemed.stream_ticket, Some(2))
        .await;
    let res = a
        .post_consent(&created.session_id, &created.device_token, true)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for stream in [&mut visitor, &mut agent] {
        let e = stream.next().await.unwrap();
        assert_eq!((e.seq(), e.status().state), (3, SessionState::Active));
    }

    // A stream that reconnects to the other replica resumes where it was.
    let res = b.post_end(&created.session_id, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ticket = a.ticket(&created.session_id, &created.device_token).await;
    let mut resumed = b.events(&created.session_id, &ticket, Some(3)).await;
    let e = resumed.next().await.unwrap();
    assert_eq!((e.seq(), e.status().state), (4, SessionState::Ended));
    resumed.assert_closed().await;
    let e = visitor.next().await.unwrap();
    assert_eq!((e.seq(), e.status().state), (4, SessionState::Ended));
}

#[tokio::test]
async fn two_agents_on_two_replicas_racing_for_each_code_get_one_session() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, a, b) = two_replicas(dir.path()).await;
    let (_, dana) = a.add_agent("demo", "Dana").await;
    let (_, sam) = b.add_agent("demo", "Sam").await;
    for _ in 0..20 {
        let created = a.create("demo").await;
        let (x, y) = tokio::join!(
            a.post_redeem(&dana, &created.code),
            b.post_redeem(&sam, &created.code)
        );
        let mut statuses = [x.status(), y.status()];
        statuses.sort();
        // One winner; the loser is told the code is no longer redeemable,
        // as for any used code.
        assert_eq!(statuses, [StatusCode::OK, StatusCode::NOT_FOUND]);
        let status = a.status(&created.session_id, &created.device_token).await;
        assert_eq!(status.state, SessionState::Authorizing);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_creations_over_both_replicas_share_no_live_code() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, a, b) = two_replicas(dir.path()).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    const TOTAL: usize = 10_000;
    const IN_FLIGHT: usize = 64;
    let mut created: Vec<CreateCodeResponse> = Vec::with_capacity(TOTAL);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..TOTAL {
        let replica = Arc::clone(if i % 2 == 0 { &a } else { &b });
        tasks.spawn(async move { replica.create("demo").await });
        if tasks.len() >= IN_FLIGHT {
            created.push(tasks.join_next().await.unwrap().unwrap());
        }
    }
    while let Some(done) = tasks.join_next().await {
        created.push(done.unwrap());
    }
    let codes: HashSet<&str> = created.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes.len(), TOTAL, "every live code is held once");
    assert_eq!(
        a.state.store.count_live_codes("demo", T0).await.unwrap(),
        TOTAL as u64
    );
    // And each is found, on either replica, for its own session.
    for c in created.iter().step_by(97) {
        assert_eq!(
            b.live("demo", &c.code).await.as_deref(),
            Some(c.session_id.as_str())
        );
        assert_eq!(
            a.live("demo", &c.code).await.as_deref(),
            Some(c.session_id.as_str())
        );
    }
}

#[tokio::test]
async fn creation_limits_are_counted_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, a, b) = two_replicas(dir.path()).await;
    // The `limited` site: 2 live codes per visitor.
    let ask = |broker: &Broker| {
        broker
            .client
            .post(broker.url("/v1/codes"))
            .header("origin", "https://limited.example")
            .json(
                &json!({ "site_key": "limited", "visitor_id": "0123456789abcdef0123456789abcdef" }),
            )
            .send()
    };
    assert_eq!(ask(&a).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(ask(&b).await.unwrap().status(), StatusCode::CREATED);
    assert_refused(ask(&a).await.unwrap(), ErrorCode::RateLimited).await;
    assert_refused(ask(&b).await.unwrap(), ErrorCode::RateLimited).await;
}

#[tokio::test]
async fn an_agent_guessing_on_both_replicas_is_locked_on_both() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, a, b) = two_replicas(dir.path()).await;
    let (_, token) = a.add_agent("demo", "Mallory").await;
    // Five wrong codes, alternating replicas: the limit counts them all.
    for i in 0..5 {
        let replica = if i % 2 == 0 { &a } else { &b };
        assert_refused(
            replica.post_redeem(&token, "000000").await,
            ErrorCode::NoSuchCode,
        )
        .await;
    }
    for replica in [&a, &b] {
        let res = replica.post_redeem(&token, "000000").await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u32 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(retry, 600, "the 10-minute window, from the first failure");
    }
    // Even a live code is refused while locked, on either replica.
    let live = b.create("demo").await;
    assert_refused(
        a.post_redeem(&token, &live.code).await,
        ErrorCode::RateLimited,
    )
    .await;
}

#[tokio::test]
async fn redis_down_gives_clear_503s_and_service_resumes_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, a, b) = two_replicas(dir.path()).await;
    let before = a.create("demo").await;
    let (_, token) = a.add_agent("demo", "Dana").await;

    redis.stop();
    for broker in [&a, &b] {
        let res = broker
            .client
            .post(broker.url("/v1/codes"))
            .header("origin", DEMO_ORIGIN)
            .json(&json!({ "site_key": "demo" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        let message = assert_refused(res, ErrorCode::StoreUnavailable).await;
        assert!(message.contains("try again"), "{message}");
        assert_refused(
            broker.post_redeem(&token, &before.code).await,
            ErrorCode::StoreUnavailable,
        )
        .await;
    }
    // The brokers stay up: their health check answers.
    for broker in [&a, &b] {
        let res = broker
            .client
            .get(broker.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    redis.resume();
    // The brokers reconnect by themselves; a request may still meet the
    // old connection while they do, and is refused the same clear way.
    for broker in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = broker
                .get_status(&before.session_id, &before.device_token)
                .await;
            if res.status() == StatusCode::OK {
                break;
            }
            assert_refused(res, ErrorCode::StoreUnavailable).await;
            assert!(Instant::now() < deadline, "the broker did not reconnect");
            tokio::task::yield_now().await;
        }
    }
    // What was acknowledged before is all there, on both replicas; the
    // refused requests left nothing behind.
    let created = b.create("demo").await;
    assert_eq!(
        b.redeem(&token, &before.code).await.session.state,
        SessionState::Authorizing
    );
    let status = a.status(&before.session_id, &before.device_token).await;
    assert_eq!(status.state, SessionState::Authorizing);
    assert_eq!(a.count_sessions().await, 2);
    assert_eq!(
        a.live("demo", &created.code).await.as_deref(),
        Some(created.session_id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_session_leaves_everything_it_acknowledged_to_the_other() {
    use common::process::BrokerProcess;
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start_tcp(dir.path());
    let url = redis.url();
    let token =
        common::process::add_agent_on(dir.path(), "Dana", &["--store".as_ref(), url.as_ref()]);
    let store = ["--store", &redis.url()];
    let mut a = BrokerProcess::start(dir.path(), &store);
    let b = BrokerProcess::start(dir.path(), &store);
    let client = reqwest::Client::new();
    let post = |base: &str, path: &str, bearer: Option<&str>, body: serde_json::Value| {
        let mut req = client.post(format!("{base}{path}")).json(&body);
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        req.send()
    };

    // On A: codes, and one session redeemed and waiting for the visitor.
    let mut made = Vec::new();
    for _ in 0..50 {
        let res = post(&a.base, "/v1/codes", None, json!({ "site_key": "demo" }))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        made.push(res.json::<CreateCodeResponse>().await.unwrap());
    }
    let session = made.pop().unwrap();
    let res = post(
        &a.base,
        "/v1/agent/redeem",
        Some(&token),
        json!({ "code": session.code }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let redeemed: agent_assist_protocol::RedeemResponse = res.json().await.unwrap();
    a.kill();

    // B carries on: the agent's stream resumes there, the visitor allows
    // there, and every code A handed out is still live.
    let events = client
        .get(b.url(&format!("/v1/sessions/{}/events", session.session_id)))
        .query(&[("ticket", &redeemed.stream_ticket)])
        .header("last-event-id", "2")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let mut events = common::SseStream::new(events);
    let res = post(
        &b.base,
        &format!("/v1/sessions/{}/consent", session.session_id),
        Some(&session.device_token),
        json!({ "allow": true }),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let e = events.next().await.unwrap();
    assert_eq!((e.seq(), e.status().state), (3, SessionState::Active));
    for c in &made {
        let res = post(
            &b.base,
            "/v1/agent/redeem",
            Some(&token),
            json!({ "code": c.code }),
        )
        .await
        .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "code {} of A is live on B",
            c.code
        );
    }
    let res = client
        .post(b.url(&format!("/v1/sessions/{}/end", session.session_id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let e = events.next().await.unwrap();
    assert_eq!(e.status().state, SessionState::Ended);
}
