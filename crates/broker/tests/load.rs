//! A sustained mixed load on the broker binary: visitors create codes,
//! agents redeem them, visitors allow, agents end; 40 sessions a second
//! (160 requests a second, well within what two cores hold) for a minute,
//! after a warm-up. Every request must succeed, and the broker's memory
//! must not grow with the sessions served.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_assist_protocol::{CreateCodeResponse, RedeemResponse, SessionState, SessionStatus};
use common::process::{add_agent, BrokerProcess};
use serde_json::json;
use tokio::task::JoinSet;

/// Sessions started per second.
const RATE: u64 = 40;
/// How much more memory the broker may hold after the long run than after
/// the warm-up, beyond the database's own growth: the allocator's pools
/// settle in the warm-up, and what leaked with every session would show
/// here as 2,400 × its size (a 2 KiB leak per session is 4.7 MiB).
const SLACK_KIB: u64 = 4 * 1024;

/// The database's size on disk (file and write-ahead log), in KiB.
fn db_kib(dir: &std::path::Path) -> u64 {
    ["broker.sqlite3", "broker.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len() / 1024)
        .sum()
}

/// One visitor's whole session: code, redemption, consent, end. Returns a
/// description of the first thing that went wrong.
async fn one_session(client: reqwest::Client, base: String, agent: String) -> Result<(), String> {
    let fail = |what: &str, status: reqwest::StatusCode| Err(format!("{what}: {status}"));
    let res = client
        .post(format!("{base}/v1/codes"))
        .json(&json!({ "site_key": "demo" }))
        .send()
        .await
        .map_err(|e| format!("create: {e}"))?;
    if res.status() != 201 {
        return fail("create", res.status());
    }
    let code: CreateCodeResponse = res.json().await.map_err(|e| e.to_string())?;
    let res = client
        .post(format!("{base}/v1/agent/redeem"))
        .bearer_auth(&agent)
        .json(&json!({ "code": code.code }))
        .send()
        .await
        .map_err(|e| format!("redeem: {e}"))?;
    if res.status() != 200 {
        return fail("redeem", res.status());
    }
    let _: RedeemResponse = res.json().await.map_err(|e| e.to_string())?;
    let res = client
        .post(format!("{base}/v1/sessions/{}/consent", code.session_id))
        .bearer_auth(&code.device_token)
        .json(&json!({ "allow": true }))
        .send()
        .await
        .map_err(|e| format!("consent: {e}"))?;
    if res.status() != 200 {
        return fail("consent", res.status());
    }
    let res = client
        .post(format!("{base}/v1/sessions/{}/end", code.session_id))
        .bearer_auth(&agent)
        .send()
        .await
        .map_err(|e| format!("end: {e}"))?;
    if res.status() != 200 {
        return fail("end", res.status());
    }
    let ended: SessionStatus = res.json().await.map_err(|e| e.to_string())?;
    if ended.state != SessionState::Ended {
        return Err(format!("end left the session {:?}", ended.state));
    }
    Ok(())
}

/// Starts [`RATE`] sessions a second for `secs` seconds; returns how many
/// ran and the errors.
async fn run_for(
    secs: u64,
    base: &str,
    agent: &str,
    client: &reqwest::Client,
) -> (u64, Vec<String>) {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut flows = JoinSet::new();
    let started = Arc::new(AtomicU64::new(0));
    for _ in 0..secs * RATE {
        tick.tick().await;
        started.fetch_add(1, Ordering::Relaxed);
        flows.spawn(one_session(
            client.clone(),
            base.to_owned(),
            agent.to_owned(),
        ));
    }
    let mut errors = Vec::new();
    while let Some(done) = flows.join_next().await {
        if let Err(e) = done.unwrap() {
            errors.push(e);
        }
    }
    (started.load(Ordering::Relaxed), errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_mixed_traffic_without_an_error_or_memory_growth() {
    let dir = tempfile::tempdir().unwrap();
    let agent = add_agent(dir.path(), "Dana");
    let broker = BrokerProcess::start(dir.path(), &[]);
    let client = reqwest::Client::new();

    let (warm, errors) = run_for(10, &broker.base, &agent, &client).await;
    assert!(
        errors.is_empty(),
        "warm-up: {:?}",
        &errors[..errors.len().min(5)]
    );
    let rss_warm = broker.rss_kib();
    let db_warm = db_kib(dir.path());

    let (sessions, errors) = run_for(60, &broker.base, &agent, &client).await;
    let rss_after = broker.rss_kib();
    let db_after = db_kib(dir.path());
    eprintln!(
        "{warm} + {sessions} sessions ({} requests), {} errors; RSS {rss_warm} KiB after the \
         warm-up, {rss_after} KiB after the minute; database {db_warm} → {db_after} KiB",
        (warm + sessions) * 4,
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert_eq!(sessions, 60 * RATE);
    // Ended sessions are kept (they are the visitors' history), so the
    // database grows, and the store's page caches (the writer's and the
    // reader's, 32 MiB each at most) hold its new pages: that much growth
    // is the data, not a leak.
    let data = 2 * db_after.saturating_sub(db_warm);
    assert!(
        rss_after <= rss_warm + data + SLACK_KIB,
        "memory grew from {rss_warm} to {rss_after} KiB over {sessions} sessions, the \
         database by {} KiB",
        db_after.saturating_sub(db_warm)
    );
}
