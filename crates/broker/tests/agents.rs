//! The agent's side of the API: credentials (API tokens and JWTs), redeeming
//! a code, and the limits on failed redemptions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agent_assist_broker::clock::Clock;
use agent_assist_protocol::{AgentInfo, AgentMe, ApiError, ErrorCode, SessionState};
use common::{assert_refused, forge, Broker, DEMO_ORIGIN, DEMO_SECRET, EVIL_ORIGIN};
use reqwest::header::{ORIGIN, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde_json::json;

async fn me(broker: &Broker, credential: &str) -> Response {
    broker
        .client
        .get(broker.url("/v1/agent/me"))
        .bearer_auth(credential)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_api_token_says_who_the_agent_is() {
    let broker = Broker::start().await;
    let (id, token) = broker.add_agent("demo", "Dana").await;
    let res = me(&broker, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let who: AgentMe = res.json().await.unwrap();
    assert_eq!(
        who.agent,
        AgentInfo {
            id,
            name: "Dana".into()
        }
    );
    assert_eq!(
        (who.site.key.as_str(), who.site.name.as_str()),
        ("demo", "Demo Shop")
    );
}

#[tokio::test]
async fn a_revoked_or_unknown_api_token_is_refused() {
    let broker = Broker::start().await;
    let (id, token) = broker.add_agent("demo", "Dana").await;
    let created = broker.create("demo").await;
    let now = broker.clock.now_ms();
    broker.state.store.revoke_agent(&id, now).await.unwrap();
    let message = assert_refused(me(&broker, &token).await, ErrorCode::InvalidToken).await;
    assert!(message.contains("revoked"), "{message}");
    assert!(!message.contains(&token), "{message}");
    let res = broker.post_redeem(&token, &created.code).await;
    assert_refused(res, ErrorCode::InvalidToken).await;
    assert!(
        broker.live("demo", &created.code).await.is_some(),
        "nothing happened"
    );

    let unknown = format!("aat_{}", "ab".repeat(32));
    let message = assert_refused(me(&broker, &unknown).await, ErrorCode::InvalidToken).await;
    assert!(message.contains("unknown"), "{message}");
    for junk in ["aat_short", "not-a-token", "a.b", "", &created.device_token] {
        assert_refused(me(&broker, junk).await, ErrorCode::InvalidToken).await;
    }
    let res = broker
        .client
        .get(broker.url("/v1/agent/me"))
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::InvalidToken).await;
}

#[tokio::test]
async fn jwts_are_accepted_only_when_everything_is_right() {
    let broker = Broker::start().await;
    let now = broker.clock.now_ms() / 1000;
    let claims = |site: &str, exp: u64| json!({ "sub": "crm-7", "name": "Casey", "site": site, "exp": exp, "iat": now });
    let hs256 = json!({ "alg": "HS256", "typ": "JWT" });

    let valid = broker.jwt("demo", "crm-7", "Casey", 600);
    let res = me(&broker, &valid).await;
    assert_eq!(res.status(), StatusCode::OK);
    let who: AgentMe = res.json().await.unwrap();
    assert_eq!(
        (who.agent.id.as_str(), who.agent.name.as_str()),
        ("crm-7", "Casey")
    );
    assert_eq!(who.site.key, "demo");

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            forge(&hs256, &claims("demo", now - 31), DEMO_SECRET.as_bytes()),
            "expired",
        ),
        (
            "bad signature",
            forge(
                &hs256,
                &claims("demo", now + 60),
                b"not the demo secret at all, no no",
            ),
            "signature",
        ),
        (
            "alg none",
            forge(
                &json!({ "alg": "none" }),
                &claims("demo", now + 60),
                DEMO_SECRET.as_bytes(),
            ),
            "HS256",
        ),
        (
            "HS512",
            forge(
                &json!({ "alg": "HS512" }),
                &claims("demo", now + 60),
                DEMO_SECRET.as_bytes(),
            ),
            "HS256",
        ),
        (
            "unknown site",
            forge(&hs256, &claims("nope", now + 60), DEMO_SECRET.as_bytes()),
            "site",
        ),
        (
            "site without a secret",
            forge(&hs256, &claims("short", now + 60), DEMO_SECRET.as_bytes()),
            "secret",
        ),
        (
            "lifetime over 24 hours",
            forge(
                &hs256,
                &claims("demo", now + 86_401),
                DEMO_SECRET.as_bytes(),
            ),
            "lifetime",
        ),
    ];
    for (what, token, says) in cases {
        let message = assert_refused(me(&broker, &token).await, ErrorCode::InvalidToken).await;
        assert!(message.contains(says), "{what}: {message}");
        assert!(!message.contains(&token), "{what}: {message}");
    }
    // Within the 30 s leeway an expired token still works.
    let late = forge(&hs256, &claims("demo", now - 29), DEMO_SECRET.as_bytes());
    assert_eq!(me(&broker, &late).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_jwt_agent_redeems_and_ends_like_any_other() {
    let broker = Broker::start().await;
    let created = broker.create("demo").await;
    let jwt = broker.jwt("demo", "crm-7", "Casey", 600);
    let redeemed = broker.redeem(&jwt, &created.code).await;
    assert_eq!(redeemed.session.state, SessionState::Authorizing);
    assert_eq!(
        redeemed.session.agent,
        Some(AgentInfo {
            id: "crm-7".into(),
            name: "Casey".into()
        })
    );
    // A fresh JWT for the same agent (the old one may have expired) still
    // counts as the session's agent.
    broker.clock.advance(Duration::from_secs(60));
    let fresh = broker.jwt("demo", "crm-7", "Casey", 600);
    let res = broker.post_end(&created.session_id, &fresh).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn redeeming_moves_the_session_to_authorizing_and_describes_the_visitor() {
    let broker = Broker::start().await;
    let t0 = broker.clock.now_ms();
    let anonymous = broker.create("demo").await;
    let res = broker
        .client
        .post(broker.url("/v1/codes"))
        .json(&json!({ "site_key": "demo", "visitor": { "name": "Ada Lovelace", "email": "ada@example.com" } }))
        .send()
        .await
        .unwrap();
    let named: agent_assist_protocol::CreateCodeResponse = res.json().await.unwrap();
    let (agent_id, token) = broker.add_agent("demo", "Dana").await;

    broker.clock.advance(Duration::from_secs(5));
    let redeemed = broker.redeem(&token, &anonymous.code).await;
    let s = &redeemed.session;
    assert_eq!(s.session_id, anonymous.session_id);
    assert_eq!(s.state, SessionState::Authorizing);
    assert_eq!(s.end_reason, None);
    assert_eq!(
        s.agent,
        Some(AgentInfo {
            id: agent_id,
            name: "Dana".into()
        })
    );
    assert_eq!(s.consent_expires_at, Some(t0 + 5_000 + 120_000));
    // The clock starts at 2023-11-14 22:13:20 UTC.
    assert_eq!(redeemed.visitor.display_name, "Web User - 11/14 22:13");
    assert_eq!(
        (
            redeemed.visitor.name.as_ref(),
            redeemed.visitor.email.as_ref()
        ),
        (None, None)
    );
    assert_eq!(redeemed.stream_ticket.len(), 44);
    // Single use: the code is no longer live.
    assert_eq!(broker.live("demo", &anonymous.code).await, None);
    let status = broker
        .status(&anonymous.session_id, &anonymous.device_token)
        .await;
    assert_eq!(&status, s);

    let redeemed = broker.redeem(&token, &named.code).await;
    assert_eq!(redeemed.visitor.display_name, "Ada Lovelace");
    assert_eq!(redeemed.visitor.email.as_deref(), Some("ada@example.com"));
}

#[tokio::test]
async fn every_unredeemable_code_gets_the_same_answer() {
    let broker = Broker::start().await;
    let (_, token) = broker.add_agent("demo", "Dana").await;
    let (_, other_site) = broker.add_agent("short", "Sam").await;

    let used = broker.create("demo").await;
    broker.redeem(&token, &used.code).await;
    let cancelled = broker.create("demo").await;
    broker
        .post_cancel(&cancelled.session_id, &cancelled.device_token)
        .await;
    let expired = broker.create("short").await;
    let live = broker.create("demo").await;

    // A wrong code: pick one that is certainly not live.
    let wrong = (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| ![&used.code, &cancelled.code, &live.code].contains(&c))
        .unwrap();
    let mut messages = Vec::new();
    for (credential, code) in [
        (&token, &wrong),
        (&token, &used.code),
        (&token, &cancelled.code),
        // Another site's live code.
        (&other_site, &live.code),
    ] {
        let res = broker.post_redeem(credential, code).await;
        messages.push(assert_refused(res, ErrorCode::NoSuchCode).await);
    }
    broker.clock.advance(Duration::from_secs(61));
    let (_, short_agent) = broker.add_agent("short", "Sky").await;
    let res = broker.post_redeem(&short_agent, &expired.code).await;
    messages.push(assert_refused(res, ErrorCode::NoSuchCode).await);
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");

    // The other site's agent did not touch the live code.
    let status = broker.status(&live.session_id, &live.device_token).await;
    assert_eq!(status.state, SessionState::Pending);
    assert!(broker.live("demo", &live.code).await.is_some());
}

#[tokio::test]
async fn malformed_codes_are_refused_without_counting() {
    let broker = Broker::start().await;
    let (_, token) = broker.add_agent("demo", "Dana").await;
    for bad in ["12345", "1234567", "12a456", "123 456", "", "１２３４５６"] {
        for _ in 0..2 {
            let res = broker.post_redeem(&token, bad).await;
            assert_refused(res, ErrorCode::InvalidField).await;
        }
    }
    let res = broker
        .post_json("/v1/agent/redeem", &token, json!({ "code": 123456 }))
        .await;
    assert_refused(res, ErrorCode::MalformedJson).await;
    // Fourteen refusals later the agent can still redeem.
    let created = broker.create("demo").await;
    broker.redeem(&token, &created.code).await;
}

#[tokio::test]
async fn agent_routes_check_the_origin() {
    let broker = Broker::start().await;
    let (_, token) = broker.add_agent("demo", "Dana").await;
    let created = broker.create("demo").await;
    let res = broker
        .client
        .post(broker.url("/v1/agent/redeem"))
        .header(ORIGIN, EVIL_ORIGIN)
        .bearer_auth(&token)
        .json(&json!({ "code": created.code }))
        .send()
        .await
        .unwrap();
    assert_refused(res, ErrorCode::OriginNotAllowed).await;
    assert!(broker.live("demo", &created.code).await.is_some());
    // The site's own origin, and the broker's own pages (the agent console).
    for origin in [DEMO_ORIGIN.to_owned(), broker.base.clone()] {
        let res = broker
            .client
            .get(broker.url("/v1/agent/me"))
            .header(ORIGIN, &origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{origin}");
    }
}

#[tokio::test]
async fn two_agents_racing_for_one_code_get_one_session() {
    let broker = Arc::new(Broker::start().await);
    for _ in 0..10 {
        let created = broker.create("demo").await;
        let (_, a) = broker.add_agent("demo", "Ann").await;
        let (_, b) = broker.add_agent("demo", "Bob").await;
        let race = |token: String| {
            let (broker, code) = (Arc::clone(&broker), created.code.clone());
            tokio::spawn(async move { broker.post_redeem(&token, &code).await })
        };
        let (ra, rb) = (race(a.clone()), race(b.clone()));
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        let mut statuses = [ra.status(), rb.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::NOT_FOUND]);
        let loser = if ra.status() == StatusCode::OK {
            rb
        } else {
            ra
        };
        let body: ApiError = loser.json().await.unwrap();
        assert_eq!(body.error, ErrorCode::NoSuchCode);
        let status = broker
            .status(&created.session_id, &created.device_token)
            .await;
        assert_eq!(status.state, SessionState::Authorizing);
        let events = broker
            .state
            .store
            .events_after(&created.session_id, 0)
            .await
            .unwrap();
        assert_eq!(events.len(), 2, "exactly one redemption was recorded");
    }
}

/// Fails `n` redemptions with a code that is never live.
async fn fail(broker: &Broker, token: &str, n: usize) {
    for _ in 0..n {
        let res = broker.post_redeem(token, "000000").await;
        assert_refused(res, ErrorCode::NoSuchCode).await;
    }
}

/// Asserts a `rate_limited` answer and returns its `retry_after`.
async fn assert_locked(res: Response) -> u32 {
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let header: u32 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: ApiError = res.json().await.unwrap();
    assert_eq!(body.error, ErrorCode::RateLimited);
    assert_eq!(body.retry_after, Some(header));
    header
}

#[tokio::test]
async fn an_agent_is_locked_after_five_failures_until_they_age_out() {
    let broker = Broker::start().await;
    let (_, token) = broker.add_agent("demo", "Mallory").await;
    let (_, colleague) = broker.add_agent("demo", "Dana").await;
    // "000000" must be live for nobody.
    let created = loop {
        let c = broker.create("demo").await;
        if c.code != "000000" {
            break c;
        }
        broker.post_cancel(&c.session_id, &c.device_token).await;
    };
    fail(&broker, &token, 4).await;
    broker.clock.advance(Duration::from_secs(100));
    fail(&broker, &token, 1).await;

    // Locked, even for a live code, and nothing happens to it.
    let retry = assert_locked(broker.post_redeem(&token, &created.code).await).await;
    assert_eq!(
        retry, 500,
        "the first failure leaves the 600 s window in 500 s"
    );
    assert!(broker.live("demo", &created.code).await.is_some());
    // Other agents of the site are not locked.
    fail(&broker, &colleague, 1).await;

    broker.clock.advance(Duration::from_millis(499_500));
    let retry = assert_locked(broker.post_redeem(&token, &created.code).await).await;
    assert_eq!(retry, 1, "rounded up");
    broker.clock.advance(Duration::from_millis(500));
    let redeemed = broker.redeem(&token, &created.code).await;
    assert_eq!(redeemed.session.state, SessionState::Authorizing);
}

#[tokio::test]
async fn the_daily_cap_holds_across_short_windows() {
    let broker = Broker::start().await;
    // Site "daily": 2 failures a minute, 5 a day.
    let (_, token) = broker.add_agent("daily", "Mallory").await;
    let t0 = broker.clock.now_ms();
    fail(&broker, &token, 2).await;
    assert_locked(broker.post_redeem(&token, "000000").await).await;
    broker.clock.advance(Duration::from_secs(60));
    fail(&broker, &token, 2).await;
    broker.clock.advance(Duration::from_secs(60));
    fail(&broker, &token, 1).await;
    broker.clock.advance(Duration::from_secs(60));
    // Five today: locked until the first of them is a day old.
    let retry = assert_locked(broker.post_redeem(&token, "000000").await).await;
    let now = broker.clock.now_ms();
    assert_eq!(u64::from(retry), (t0 + 86_400_000 - now) / 1000);
    broker.clock.advance(Duration::from_secs(u64::from(retry)));
    fail(&broker, &token, 1).await;
}

#[tokio::test]
async fn a_site_is_locked_for_every_agent_after_its_limit() {
    let broker = Broker::start().await;
    // Site "strict": agents 5 per 10 minutes, the site 6 per hour.
    let mut agents = Vec::new();
    for name in ["A", "B", "C"] {
        agents.push(broker.add_agent("strict", name).await.1);
    }
    fail(&broker, &agents[0], 3).await;
    fail(&broker, &agents[1], 3).await;
    for token in &agents {
        let retry = assert_locked(broker.post_redeem(token, "000000").await).await;
        assert_eq!(retry, 3600);
    }
    // Other sites are not affected.
    let (_, demo) = broker.add_agent("demo", "D").await;
    fail(&broker, &demo, 1).await;
    broker.clock.advance(Duration::from_secs(3600));
    fail(&broker, &agents[2], 1).await;
}

#[tokio::test]
async fn a_lock_survives_a_restart() {
    let broker = Broker::start().await;
    let (db, clock) = (broker.db.clone(), Arc::clone(&broker.clock));
    let (_, token) = broker.add_agent("demo", "Mallory").await;
    fail(&broker, &token, 5).await;
    assert_locked(broker.post_redeem(&token, "000000").await).await;
    let dir = broker.stop().await;

    let broker = Broker::start_on(&db, clock, |s| s).await;
    let retry = assert_locked(broker.post_redeem(&token, "000000").await).await;
    assert_eq!(retry, 600);
    broker.stop().await;
    drop(dir);
}

#[tokio::test]
async fn concurrent_guesses_cannot_exceed_the_limit() {
    let broker = Arc::new(Broker::start().await);
    let (_, token) = broker.add_agent("demo", "Mallory").await;
    let mut guesses = Vec::new();
    for _ in 0..40 {
        let (broker, token) = (Arc::clone(&broker), token.clone());
        guesses.push(tokio::spawn(async move {
            broker.post_redeem(&token, "000000").await.status()
        }));
    }
    let mut not_found = 0;
    for g in guesses {
        match g.await.unwrap() {
            StatusCode::NOT_FOUND => not_found += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(not_found, 5, "exactly agent_max guesses got through");
}

/// Real codes redeemed at the same moment are not guesses: a busy agent
/// (or a whole call centre, against the site's limit) is never locked out
/// by its own successes. Each redemption counted as a failure until it
/// was found live once let 40 concurrent redemptions lock the agent.
#[tokio::test]
async fn many_real_codes_redeemed_at_once_never_lock_anyone() {
    let broker = Arc::new(Broker::start().await);
    let (_, token) = broker.add_agent("demo", "Dana").await;
    let mut codes = Vec::new();
    for _ in 0..40 {
        codes.push(broker.create("demo").await.code);
    }
    let mut redemptions = Vec::new();
    for code in codes {
        let (broker, token) = (Arc::clone(&broker), token.clone());
        redemptions.push(tokio::spawn(async move {
            broker.post_redeem(&token, &code).await.status()
        }));
    }
    for r in redemptions {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    // And the agent's full allowance of mistakes is still there.
    for _ in 0..5 {
        let res = broker.post_redeem(&token, "000000").await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
