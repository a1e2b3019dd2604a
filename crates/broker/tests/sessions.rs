//! The session lifecycle through the API: every transition, every illegal
//! one, who may do what, and the timeouts with a controllable clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agent_assist_protocol::{
    CreateCodeResponse, EndReason, ErrorCode, SessionState, SessionStatus,
};
use common::{assert_refused, Broker};
use reqwest::StatusCode;

/// A session brought to a state through the API, with its agent's token.
struct Setup {
    created: CreateCodeResponse,
    agent: String,
}

async fn session_in(broker: &Broker, state: SessionState) -> Setup {
    let created = broker.create("demo").await;
    let (_, agent) = broker.add_agent("demo", "Dana").await;
    if state != SessionState::Pending {
        broker.redeem(&agent, &created.code).await;
    }
    match state {
        SessionState::Active => {
            let res = broker
                .post_consent(&created.session_id, &created.device_token, true)
                .await;
            assert_eq!(res.status(), StatusCode::OK);
        }
        SessionState::Ended => {
            let res = broker
                .post_consent(&created.session_id, &created.device_token, false)
                .await;
            assert_eq!(res.status(), StatusCode::OK);
        }
        _ => {}
    }
    let status = broker
        .status(&created.session_id, &created.device_token)
        .await;
    assert_eq!(status.state, state);
    Setup { created, agent }
}

/// What can happen to a session, through the API or the clock.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Another agent of the site enters the code.
    Redeem,
    Allow,
    Deny,
    Cancel,
    DeviceEnd,
    AgentEnd,
    /// The clock passes the code's lifetime (20 minutes).
    CodeLifetimePasses,
    /// The clock passes the consent timeout (2 minutes).
    ConsentTimeoutPasses,
}

/// What an action should lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 200 and the session in this state, with this reason.
    Moves(SessionState, Option<EndReason>),
    /// Refused with this error; nothing changes.
    Refused(ErrorCode),
    /// 200 (or, for the clock, nothing) and nothing changes.
    Unchanged,
}

async fn act(broker: &Broker, setup: &Setup, action: Action) -> reqwest::Response {
    let c = &setup.created;
    let (id, device) = (c.session_id.as_str(), c.device_token.as_str());
    match action {
        Action::Redeem => {
            let (_, other) = broker.add_agent("demo", "Other").await;
            broker.post_redeem(&other, &c.code).await
        }
        Action::Allow => broker.post_consent(id, device, true).await,
        Action::Deny => broker.post_consent(id, device, false).await,
        Action::Cancel => broker.post_cancel(id, device).await,
        Action::DeviceEnd => broker.post_end(id, device).await,
        Action::AgentEnd => broker.post_end(id, &setup.agent).await,
        Action::CodeLifetimePasses | Action::ConsentTimeoutPasses => {
            let secs = if matches!(action, Action::CodeLifetimePasses) {
                1200
            } else {
                120
            };
            broker.clock.advance(Duration::from_secs(secs));
            broker.get_status(id, device).await
        }
    }
}

#[tokio::test]
async fn every_state_and_action_through_the_api() {
    use Action as A;
    use EndReason as R;
    use Outcome::*;
    use SessionState as S;
    let ended = |r| Moves(S::Ended, Some(r));
    let table: Vec<(S, A, Outcome)> = vec![
        (S::Pending, A::Redeem, Moves(S::Authorizing, None)),
        (S::Pending, A::Allow, Refused(ErrorCode::InvalidState)),
        (S::Pending, A::Deny, Refused(ErrorCode::InvalidState)),
        (S::Pending, A::Cancel, ended(R::DeviceCancelled)),
        (S::Pending, A::DeviceEnd, ended(R::DeviceCancelled)),
        // No agent has redeemed it: to an agent it does not exist.
        (S::Pending, A::AgentEnd, Refused(ErrorCode::UnknownSession)),
        (S::Pending, A::CodeLifetimePasses, ended(R::PendingTimeout)),
        (S::Pending, A::ConsentTimeoutPasses, Unchanged),
        (S::Authorizing, A::Redeem, Refused(ErrorCode::NoSuchCode)),
        (S::Authorizing, A::Allow, Moves(S::Active, None)),
        (S::Authorizing, A::Deny, ended(R::ConsentDenied)),
        (S::Authorizing, A::Cancel, ended(R::DeviceCancelled)),
        (S::Authorizing, A::DeviceEnd, ended(R::DeviceCancelled)),
        (S::Authorizing, A::AgentEnd, ended(R::AgentEnded)),
        (
            S::Authorizing,
            A::ConsentTimeoutPasses,
            ended(R::AuthorizingTimeout),
        ),
        (S::Active, A::Redeem, Refused(ErrorCode::NoSuchCode)),
        (S::Active, A::Allow, Refused(ErrorCode::InvalidState)),
        (S::Active, A::Deny, Refused(ErrorCode::InvalidState)),
        (S::Active, A::Cancel, Refused(ErrorCode::InvalidState)),
        (S::Active, A::DeviceEnd, ended(R::DeviceEnded)),
        (S::Active, A::AgentEnd, ended(R::AgentEnded)),
        // Neither the code's expiry nor the consent deadline touches an
        // active session.
        (S::Active, A::CodeLifetimePasses, Unchanged),
        (S::Active, A::ConsentTimeoutPasses, Unchanged),
        (S::Ended, A::Redeem, Refused(ErrorCode::NoSuchCode)),
        (S::Ended, A::Allow, Refused(ErrorCode::InvalidState)),
        (S::Ended, A::Deny, Refused(ErrorCode::InvalidState)),
        (S::Ended, A::Cancel, Unchanged),
        (S::Ended, A::DeviceEnd, Unchanged),
        (S::Ended, A::AgentEnd, Unchanged),
        (S::Ended, A::CodeLifetimePasses, Unchanged),
        (S::Ended, A::ConsentTimeoutPasses, Unchanged),
    ];
    let broker = Broker::start().await;
    for (state, action, outcome) in table {
        let case = format!("{state:?} + {action:?}");
        let setup = session_in(&broker, state).await;
        let c = &setup.created;
        let before = broker.status(&c.session_id, &c.device_token).await;
        let log_before = broker
            .state
            .store
            .events_after(&c.session_id, 0)
            .await
            .unwrap()
            .len();
        let res = act(&broker, &setup, action).await;
        match outcome {
            Outcome::Moves(to, reason) => {
                assert_eq!(res.status(), StatusCode::OK, "{case}");
                let answer: serde_json::Value = res.json().await.unwrap();
                let now = broker.status(&c.session_id, &c.device_token).await;
                assert_eq!((now.state, now.end_reason), (to, reason), "{case}");
                // The answer is the new status (redeem wraps it).
                let answered = answer.get("session").unwrap_or(&answer);
                let answered: SessionStatus = serde_json::from_value(answered.clone()).unwrap();
                assert_eq!(answered, now, "{case}");
                let log = broker
                    .state
                    .store
                    .events_after(&c.session_id, 0)
                    .await
                    .unwrap();
                assert_eq!(
                    log.len(),
                    log_before + 1,
                    "{case}: one event per transition"
                );
                assert_eq!(log.last().unwrap().status, now, "{case}");
            }
            Outcome::Refused(code) => {
                assert_refused(res, code).await;
            }
            Outcome::Unchanged => {
                assert_eq!(res.status(), StatusCode::OK, "{case}");
                let answered: SessionStatus = res.json().await.unwrap();
                assert_eq!(answered, before, "{case}");
            }
        }
        if !matches!(outcome, Outcome::Moves(..)) {
            let now = broker.status(&c.session_id, &c.device_token).await;
            assert_eq!(now, before, "{case}: nothing changed");
            let log = broker
                .state
                .store
                .events_after(&c.session_id, 0)
                .await
                .unwrap();
            assert_eq!(log.len(), log_before, "{case}: no event");
        }
    }
}

#[tokio::test]
async fn consent_and_cancel_are_for_the_device_only() {
    let broker = Broker::start().await;
    let setup = session_in(&broker, SessionState::Authorizing).await;
    let id = &setup.created.session_id;
    let res = broker.post_consent(id, &setup.agent, true).await;
    assert_refused(res, ErrorCode::InvalidToken).await;
    let res = broker.post_cancel(id, &setup.agent).await;
    assert_refused(res, ErrorCode::InvalidToken).await;
    let res = broker
        .post_json(
            &format!("/v1/sessions/{id}/consent"),
            &setup.created.device_token,
            serde_json::json!({ "allow": "yes" }),
        )
        .await;
    assert_refused(res, ErrorCode::MalformedJson).await;
    let status = broker.status(id, &setup.created.device_token).await;
    assert_eq!(status.state, SessionState::Authorizing);
}

#[tokio::test]
async fn only_the_sessions_own_agent_can_see_or_end_it() {
    let broker = Broker::start().await;
    let setup = session_in(&broker, SessionState::Active).await;
    let id = setup.created.session_id.as_str();
    let (_, colleague) = broker.add_agent("demo", "Colleague").await;
    let (_, stranger) = broker.add_agent("short", "Stranger").await;
    let jwt = broker.jwt("demo", "crm-1", "Casey", 600);
    for other in [&colleague, &stranger, &jwt] {
        assert_refused(broker.post_end(id, other).await, ErrorCode::UnknownSession).await;
        assert_refused(
            broker.get_status(id, other).await,
            ErrorCode::UnknownSession,
        )
        .await;
        let res = broker
            .post_empty(&format!("/v1/sessions/{id}/ticket"), other)
            .await;
        assert_refused(res, ErrorCode::UnknownSession).await;
    }
    // The session's agent can read it, and end it.
    let status = broker.status(id, &setup.agent).await;
    assert_eq!(status.state, SessionState::Active);
    assert_eq!(status.agent.as_ref().unwrap().name, "Dana");
    let res = broker.post_end(id, &setup.agent).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ended: SessionStatus = res.json().await.unwrap();
    assert_eq!(ended.end_reason, Some(EndReason::AgentEnded));
    // Ending again changes nothing, whoever asks.
    let res = broker.post_end(id, &setup.created.device_token).await;
    assert_eq!(res.json::<SessionStatus>().await.unwrap(), ended);
}

#[tokio::test]
async fn a_late_answer_finds_the_prompt_timed_out() {
    let broker = Broker::start().await;
    let setup = session_in(&broker, SessionState::Authorizing).await;
    let c = &setup.created;
    broker.clock.advance(Duration::from_millis(119_999));
    assert_eq!(
        broker.status(&c.session_id, &c.device_token).await.state,
        SessionState::Authorizing
    );
    broker.clock.advance(Duration::from_millis(1));
    let res = broker
        .post_consent(&c.session_id, &c.device_token, true)
        .await;
    let message = assert_refused(res, ErrorCode::InvalidState).await;
    assert!(message.contains("authorizing_timeout"), "{message}");
    let status = broker.status(&c.session_id, &c.device_token).await;
    assert_eq!(
        (status.state, status.end_reason),
        (SessionState::Ended, Some(EndReason::AuthorizingTimeout))
    );
    assert_eq!(status.consent_expires_at, None);
}

#[tokio::test]
async fn an_unanswered_prompt_ends_on_time_without_anyone_asking() {
    let broker = Broker::start().await;
    let setup = session_in(&broker, SessionState::Authorizing).await;
    let c = &setup.created;
    let ticket = broker.ticket(&c.session_id, &c.device_token).await;
    let mut events = broker.events(&c.session_id, &ticket, Some(2)).await;
    // Moving the clock is all it takes: the consent timer fires and the
    // stream hears of it.
    broker.clock.advance(Duration::from_secs(120));
    let event = events.next().await.expect("the timeout event");
    assert_eq!(event.seq(), 3);
    let status = event.status();
    assert_eq!(
        (status.state, status.end_reason),
        (SessionState::Ended, Some(EndReason::AuthorizingTimeout))
    );
    events.assert_closed().await;
}

#[tokio::test]
async fn after_a_restart_the_sweep_ends_prompts_that_ran_out() {
    let broker = Broker::start().await;
    let (db, clock) = (broker.db.clone(), Arc::clone(&broker.clock));
    let setup = session_in(&broker, SessionState::Authorizing).await;
    let pending = broker.create("demo").await;
    let dir = broker.stop().await;

    // No timer survives the restart; the sweep is the backstop.
    let broker = Broker::start_on(&db, clock, |s| s).await;
    broker.clock.advance(Duration::from_secs(121));
    let swept = broker.state.sweep().await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].session_id, setup.created.session_id);
    assert_eq!(
        swept[0].status.end_reason,
        Some(EndReason::AuthorizingTimeout)
    );
    broker.clock.advance(Duration::from_secs(1200));
    let swept = broker.state.sweep().await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].session_id, pending.session_id);
    assert_eq!(swept[0].status.end_reason, Some(EndReason::PendingTimeout));
    assert!(broker.state.sweep().await.unwrap().is_empty());
    broker.stop().await;
    drop(dir);
}
