//! Live session state over Server-Sent Events: tickets, delivery in order,
//! resuming after a dropped connection, and closing.

mod common;

use std::time::Duration;

use agent_assist_protocol::{EndReason, ErrorCode, SessionState, SESSION_EVENT};
use common::{assert_refused, Broker, DEMO_ORIGIN, EVIL_ORIGIN, SHORT_ORIGIN};
use reqwest::header::{ACCESS_CONTROL_ALLOW_ORIGIN, ORIGIN};
use reqwest::StatusCode;

#[tokio::test]
async fn both_sides_see_every_state_in_order_and_the_stream_closes_after_ended() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    // The visitor follows with the ticket that came with the code.
    let mut visitor = broker
        .events(&created.session_id, &created.stream_ticket, None)
        .await;
    let first = visitor.next().await.unwrap();
    assert_eq!(visitor.retry, Some(2000));
    assert_eq!(first.event.as_deref(), Some(SESSION_EVENT));
    assert_eq!(first.seq(), 1);
    assert_eq!(first.status().state, SessionState::Pending);

    let (_, agent) = broker.add_agent("demo", "Dana").await;
    let redeemed = broker.redeem(&agent, &created.code).await;
    // The agent follows with the ticket that came with the redemption.
    let mut console = broker
        .events(&created.session_id, &redeemed.stream_ticket, None)
        .await;

    let second = visitor.next().await.unwrap();
    assert_eq!(second.seq(), 2);
    let status = second.status();
    assert_eq!(status.state, SessionState::Authorizing);
    assert_eq!(status.agent.unwrap().name, "Dana");
    assert!(status.consent_expires_at.is_some());

    let res = broker
        .post_consent(&created.session_id, &created.device_token, true)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = broker.post_end(&created.session_id, &agent).await;
    assert_eq!(res.status(), StatusCode::OK);

    let third = visitor.next().await.unwrap();
    assert_eq!(
        (third.seq(), third.status().state),
        (3, SessionState::Active)
    );
    let fourth = visitor.next().await.unwrap();
    assert_eq!(fourth.seq(), 4);
    assert_eq!(
        (fourth.status().state, fourth.status().end_reason),
        (SessionState::Ended, Some(EndReason::AgentEnded))
    );
    visitor.assert_closed().await;

    // The console, which connected after event 2, gets the whole log.
    let seqs: Vec<(u64, SessionState)> = {
        let mut v = Vec::new();
        while let Some(e) = console.next().await {
            v.push((e.seq(), e.status().state));
        }
        v
    };
    assert_eq!(
        seqs,
        vec![
            (1, SessionState::Pending),
            (2, SessionState::Authorizing),
            (3, SessionState::Active),
            (4, SessionState::Ended)
        ]
    );
}

#[tokio::test]
async fn a_dropped_connection_resumes_from_last_event_id_and_misses_nothing() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    let id = created.session_id.as_str();
    let mut stream = broker.events(id, &created.stream_ticket, None).await;
    assert_eq!(stream.next().await.unwrap().seq(), 1);
    drop(stream);

    // Two transitions while the visitor is away.
    let (_, agent) = broker.add_agent("demo", "Dana").await;
    broker.redeem(&agent, &created.code).await;
    let res = broker.post_consent(id, &created.device_token, true).await;
    assert_eq!(res.status(), StatusCode::OK);

    let mut stream = broker.events(id, &created.stream_ticket, Some(1)).await;
    let again: Vec<u64> = vec![
        stream.next().await.unwrap().seq(),
        stream.next().await.unwrap().seq(),
    ];
    assert_eq!(again, vec![2, 3]);
    assert!(
        stream
            .next_within(Duration::from_millis(300))
            .await
            .is_err(),
        "exactly events 2 and 3, and the stream stays open"
    );
    // The live part carries on.
    broker.post_end(id, &created.device_token).await;
    let last = stream.next().await.unwrap();
    assert_eq!(last.seq(), 4);
    assert_eq!(last.status().end_reason, Some(EndReason::DeviceEnded));
    stream.assert_closed().await;

    // A client that reconnects by hand says where it stopped in the query.
    let res = broker
        .client
        .get(broker.url(&format!("/v1/sessions/{id}/events")))
        .query(&[
            ("ticket", created.stream_ticket.as_str()),
            ("last_event_id", "2"),
        ])
        .send()
        .await
        .unwrap();
    let mut stream = common::SseStream::new(res);
    assert_eq!(stream.next().await.unwrap().seq(), 3);
    assert_eq!(stream.next().await.unwrap().seq(), 4);
    stream.assert_closed().await;
    // Having seen everything, it is closed at once.
    let mut stream = broker.events(id, &created.stream_ticket, Some(4)).await;
    stream.assert_closed().await;
}

#[tokio::test]
async fn streams_need_a_live_ticket_for_their_own_session() {
    let broker = Broker::start().await;
    let a = broker.create("demo").await;
    let b = broker.create("demo").await;
    let path = |id: &str| broker.url(&format!("/v1/sessions/{id}/events"));

    let res = broker.client.get(path(&a.session_id)).send().await.unwrap();
    let message = assert_refused(res, ErrorCode::InvalidToken).await;
    assert!(message.contains("ticket"), "{message}");
    // a's own ticket with one digit of its random part changed.
    let last = if a.stream_ticket.ends_with('0') {
        "1"
    } else {
        "0"
    };
    let tampered = format!("{}{last}", &a.stream_ticket[..a.stream_ticket.len() - 1]);
    for ticket in [
        "",
        "nope",
        &a.device_token,
        &"0".repeat(32),
        &"0".repeat(44),
        &tampered,
        &b.stream_ticket,
    ] {
        let res = broker.get_events(&a.session_id, ticket, None).await;
        assert_refused(res, ErrorCode::InvalidToken).await;
    }
    // The device token does not open a stream either (it never goes in a URL).
    let res = broker
        .client
        .get(path(&a.session_id))
        .bearer_auth(&a.device_token)
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::InvalidToken).await;
    let res = broker
        .get_events("0123456789abcdef0123456789abcdef", &a.stream_ticket, None)
        .await;
    assert_refused(res, ErrorCode::InvalidToken).await;

    // Tickets work for five minutes; a fresh one can be had at any time.
    broker.clock.advance(Duration::from_secs(299));
    broker.events(&a.session_id, &a.stream_ticket, None).await;
    broker.clock.advance(Duration::from_secs(1));
    let res = broker
        .get_events(&a.session_id, &a.stream_ticket, None)
        .await;
    assert_refused(res, ErrorCode::InvalidToken).await;
    let fresh = broker.ticket(&a.session_id, &a.device_token).await;
    assert_ne!(fresh, a.stream_ticket);
    broker.events(&a.session_id, &fresh, None).await;
    // Asking for a ticket needs the device token (or the agent's credential).
    let res = broker
        .post_empty(
            &format!("/v1/sessions/{}/ticket", a.session_id),
            &b.device_token,
        )
        .await;
    assert_refused(res, ErrorCode::InvalidToken).await;

    let res = broker
        .client
        .get(path(&a.session_id))
        .query(&[("ticket", fresh.as_str())])
        .header("last-event-id", "one")
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::InvalidField).await;
}

#[tokio::test]
async fn an_ended_sessions_stream_replays_and_closes() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    broker
        .post_cancel(&created.session_id, &created.device_token)
        .await;
    let mut stream = broker
        .events(&created.session_id, &created.stream_ticket, None)
        .await;
    assert_eq!(
        stream.next().await.unwrap().status().state,
        SessionState::Pending
    );
    let ended = stream.next().await.unwrap().status();
    assert_eq!(ended.end_reason, Some(EndReason::DeviceCancelled));
    stream.assert_closed().await;
}

#[tokio::test]
async fn the_sites_origins_apply_to_streams() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    let get = |origin: &'static str| {
        broker
            .client
            .get(broker.url(&format!("/v1/sessions/{}/events", created.session_id)))
            .query(&[("ticket", created.stream_ticket.as_str())])
            .header(ORIGIN, origin)
            .send()
    };
    let res = get(DEMO_ORIGIN).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], DEMO_ORIGIN);
    drop(res);
    for origin in [EVIL_ORIGIN, SHORT_ORIGIN] {
        assert_refused(get(origin).await.unwrap(), ErrorCode::OriginNotAllowed).await;
    }
}

#[tokio::test]
async fn shutting_down_closes_open_streams() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = broker
            .events(&created.session_id, &created.stream_ticket, None)
            .await;
        assert_eq!(s.next().await.unwrap().seq(), 1);
        streams.push(s);
    }
    // A graceful shutdown that waited for these streams would never end.
    tokio::time::timeout(Duration::from_secs(10), broker.stop())
        .await
        .expect("the broker stops with streams open");
    for mut s in streams {
        s.assert_closed().await;
    }
}
