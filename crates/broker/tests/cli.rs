//! The `agent-assist-broker` binary as an operator runs it: the listening
//! line, signals, a kill and restart on the same file, a bad config file,
//! and the `agents` commands.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use agent_assist_broker::clock::{Clock, SystemClock};
use agent_assist_broker::store::sqlite::SqliteStore;
use agent_assist_broker::store::Store;
use agent_assist_protocol::{AgentMe, CreateCodeResponse, SessionState, SessionStatus};
use common::process::{BrokerProcess, BIN};
use serde_json::json;

mod common;

const SITES: &str = r#"
[[site]]
key = "demo"
name = "Demo Shop"
allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]
# Hundreds of codes from one address: no creation limits here.
create_limits = { visitor_live = 0, visitor_per_minute = 0, address_live = 0, address_per_minute = 0, site_live = 0 }
"#;

fn start(dir: &Path) -> BrokerProcess {
    BrokerProcess::start(dir, &[])
}

#[tokio::test]
async fn serves_until_sigterm_and_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), SITES).unwrap();
    let mut broker = start(dir.path());
    let res = reqwest::get(format!("{}/healthz", broker.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    broker.signal("TERM");
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn exits_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), SITES).unwrap();
    let mut broker = start(dir.path());
    broker.signal("INT");
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn a_killed_broker_restarts_with_every_code_and_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), SITES).unwrap();
    let client = reqwest::Client::new();

    let mut broker = start(dir.path());
    let mut created = Vec::new();
    for _ in 0..5 {
        let res = client
            .post(format!("{}/v1/codes", broker.base))
            .json(&json!({ "site_key": "demo" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        created.push(res.json::<CreateCodeResponse>().await.unwrap());
    }
    // SIGKILL: no graceful shutdown, no chance to flush anything.
    broker.kill();
    drop(broker);

    let broker = start(dir.path());
    for c in &created {
        let res = client
            .get(format!("{}/v1/sessions/{}", broker.base, c.session_id))
            .bearer_auth(&c.device_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let status: SessionStatus = res.json().await.unwrap();
        assert_eq!(status.state, SessionState::Pending);
    }
    let store = SqliteStore::open(dir.path().join("broker.sqlite3")).unwrap();
    assert_all_live(&store, &created).await;
}

/// Requests that arrive together share a commit (the store's group
/// commit), and a code is answered only once that commit is done: every
/// answered code is still there, and still unique, after a SIGKILL.
#[tokio::test]
async fn codes_issued_concurrently_all_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), SITES).unwrap();
    let client = reqwest::Client::new();
    let mut broker = start(dir.path());
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let request = client
                .post(format!("{}/v1/codes", broker.base))
                .json(&json!({ "site_key": "demo" }));
            tokio::spawn(async move {
                let res = request.send().await.unwrap();
                assert_eq!(res.status(), 201);
                res.json::<CreateCodeResponse>().await.unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    for request in requests {
        created.push(request.await.unwrap());
    }
    broker.kill();
    drop(broker);

    let mut codes: Vec<_> = created.iter().map(|c| c.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), created.len(), "a live code was issued twice");
    let store = SqliteStore::open(dir.path().join("broker.sqlite3")).unwrap();
    assert_eq!(store.count_sessions().await.unwrap(), 200);
    assert_all_live(&store, &created).await;
}

#[test]
fn a_store_the_broker_cannot_use_is_refused_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    common::process::prepare(dir.path());
    let serve = |store: &str| {
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(dir.path().join("sites.toml"))
            .args(["--store", store])
            .output()
            .unwrap()
    };
    // Not a Redis URL: a usage error, before anything is opened.
    for (store, says) in [
        ("http://cache:6379", "scheme \"http\""),
        ("redis://", "names no host"),
        ("cache:6379", "scheme \"cache\""),
        ("not a url", "not a URL"),
    ] {
        let out = serve(store);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{store}: {stderr}");
        assert!(stderr.contains("--store"), "{store}: {stderr}");
        assert!(stderr.contains(says), "{store}: {stderr}");
    }
    // A Redis nobody answers at: exit 1, naming it (never its password).
    let out = serve("redis://:hunter2@127.0.0.1:1/0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open Redis at redis://127.0.0.1:1/0"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!dir.path().join("broker.sqlite3").exists());
}

#[test]
fn a_bad_config_file_is_reported_by_file_and_field_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sites.toml");
    let db = dir.path().join("broker.sqlite3");
    let cases = [
        (SITES.replace("key = \"demo\"", "key = \"\""), "site[0].key"),
        (
            SITES.replace("http://localhost:8080", "http://localhost:8080/shop"),
            "allowed_origins[1]",
        ),
        (
            format!("{SITES}code_lifetime_secs = 0\n"),
            "code_lifetime_secs",
        ),
        (format!("{SITES}colour = \"red\"\n"), "colour"),
        (format!("{SITES}{SITES}"), "site[1].key"),
    ];
    for (text, field) in cases {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{field}: {stderr}");
        assert!(stderr.contains("sites.toml"), "{field}: {stderr}");
        assert!(stderr.contains(field), "{field}: {stderr}");
        assert!(out.stdout.is_empty(), "nothing was started");
        assert!(!db.exists(), "no database was created");
    }

    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.path().join("missing.toml"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    assert!(!db.exists());
}

/// Runs `agent-assist-broker agents <args>` and returns (exit code, stdout, stderr).
fn agents(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("agents").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `key=value` line of `agents add`'s output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in {out:?}"))
}

#[tokio::test]
async fn agents_are_added_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (config, db) = (
        dir.path().join("sites.toml"),
        dir.path().join("broker.sqlite3"),
    );
    std::fs::write(&config, SITES).unwrap();
    let (config_s, db_s) = (config.to_str().unwrap(), db.to_str().unwrap());

    let (code, out, err) = agents(
        &[
            "add", "--config", config_s, "--db", db_s, "--site", "demo", "--name", "Dana",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap().contains("Dana"), "{out}");
    let dana = field(&out, "agent_id").to_owned();
    let dana_token = field(&out, "token").to_owned();
    assert!(dana.starts_with("agt_") && dana.len() == 20, "{dana}");
    assert!(
        dana_token.starts_with("aat_") && dana_token.len() == 68,
        "{dana_token}"
    );

    // --config and --db also come from the environment, as for `serve`.
    let (code, out, err) = agents(
        &["add", "--site", "demo", "--name", "Sam Smith"],
        &[("AGENT_ASSIST_CONFIG", &config), ("AGENT_ASSIST_DB", &db)],
    );
    assert_eq!(code, 0, "{err}");
    let sam = field(&out, "agent_id").to_owned();
    let sam_token = field(&out, "token").to_owned();

    // A site that is not in the config is refused, and nothing is printed.
    let (code, out, err) = agents(
        &[
            "add", "--config", config_s, "--db", db_s, "--site", "nope", "--name", "X",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope"), "{err}");
    assert!(out.is_empty(), "{out}");

    let (code, table, _) = agents(&["list", "--db", db_s], &[]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert!(lines[1].contains(&dana) && lines[1].contains("Dana") && lines[1].ends_with("active"));
    assert!(
        lines[2].contains(&sam) && lines[2].contains("Sam Smith"),
        "{table}"
    );
    assert!(
        !table.contains(&dana_token[4..]) && !table.contains(&sam_token[4..]),
        "{table}"
    );
    let (_, other, _) = agents(&["list", "--db", db_s, "--site", "other"], &[]);
    assert_eq!(other.trim(), "No agents.");

    // The running broker accepts the token until it is revoked.
    let broker = start(dir.path());
    let client = reqwest::Client::new();
    let me = |token: String| {
        client
            .get(format!("{}/v1/agent/me", broker.base))
            .bearer_auth(token)
            .send()
    };
    let res = me(dana_token.clone()).await.unwrap();
    assert_eq!(res.status(), 200);
    let who: AgentMe = res.json().await.unwrap();
    assert_eq!(
        (who.agent.id.as_str(), who.agent.name.as_str()),
        (dana.as_str(), "Dana")
    );

    let (code, out, _) = agents(&["revoke", "--db", db_s, &dana], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("Revoked"), "{out}");
    assert_eq!(me(dana_token.clone()).await.unwrap().status(), 401);
    assert_eq!(me(sam_token.clone()).await.unwrap().status(), 200);
    let (code, out, _) = agents(&["revoke", "--db", db_s, &dana], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("already"), "{out}");
    let (code, _, err) = agents(&["revoke", "--db", db_s, "agt_0000000000000000"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("agt_0000000000000000"), "{err}");
    let (_, table, _) = agents(&["list", "--db", db_s, "--site", "demo"], &[]);
    assert!(table.lines().nth(1).unwrap().contains("revoked"), "{table}");

    // Only hashes are stored.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let dump: String = conn
        .query_row(
            "SELECT group_concat(id || site || name || hex(token_hash)) FROM agents",
            [],
            |r| r.get(0),
        )
        .unwrap();
    for token in [&dana_token, &sam_token] {
        assert!(!dump.to_lowercase().contains(&token[4..]), "{dump}");
    }
}

/// Reads an event stream to its end (it closes after `ended`); returns the body.
async fn read_stream(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    tokio::time::timeout(Duration::from_secs(20), res.text())
        .await
        .expect("the stream closes after the session ends")
        .unwrap()
}

#[tokio::test]
async fn no_code_token_jwt_or_ticket_ever_reaches_the_log() {
    const SECRET: &str = "log-test-secret-0123456789abcdef-0123";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sites.toml");
    std::fs::write(&config, format!("{SITES}secret = \"{SECRET}\"\n")).unwrap();
    let db = dir.path().join("broker.sqlite3");
    let (config_s, db_s) = (config.to_str().unwrap(), db.to_str().unwrap());
    let add = |name: &str| {
        let (code, out, err) = agents(
            &[
                "add", "--config", config_s, "--db", db_s, "--site", "demo", "--name", name,
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        (
            field(&out, "agent_id").to_owned(),
            field(&out, "token").to_owned(),
        )
    };
    let (_, api_token) = add("Dana");
    let (_, mallory_token) = add("Mallory");
    let (revoked, revoked_token) = add("Gone");
    assert_eq!(agents(&["revoke", "--db", db_s, &revoked], &[]).0, 0);

    let (mut broker, log) = BrokerProcess::start_logged(dir.path());
    let base = broker.base.clone();
    let client = reqwest::Client::new();
    let now = SystemClock.now_ms() / 1000;
    let jwt = agent_assist_broker::jwt::encode(
        &json!({ "sub": "crm-9", "name": "Casey", "site": "demo", "exp": now + 600, "iat": now }),
        SECRET.as_bytes(),
    );
    let mut secrets: Vec<String> = vec![
        api_token.clone(),
        mallory_token.clone(),
        revoked_token.clone(),
        jwt.clone(),
        jwt.rsplit('.').next().unwrap().to_owned(),
        SECRET.to_owned(),
    ];

    // The visitor asks for a code and follows the session.
    let res = client
        .post(format!("{base}/v1/codes"))
        .json(&json!({ "site_key": "demo" }))
        .send()
        .await
        .unwrap();
    let created: CreateCodeResponse = res.json().await.unwrap();
    let id = created.session_id.clone();
    secrets.extend([created.device_token.clone(), created.stream_ticket.clone()]);
    let visitor_stream = tokio::spawn(read_stream(
        client
            .get(format!("{base}/v1/sessions/{id}/events"))
            .query(&[("ticket", created.stream_ticket.as_str())])
            .send()
            .await
            .unwrap(),
    ));

    // Credentials, good and bad.
    for credential in [&api_token, &jwt, &revoked_token] {
        client
            .get(format!("{base}/v1/agent/me"))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
    }
    let forged = format!("{}x", &jwt[..jwt.len() - 1]);
    client
        .get(format!("{base}/v1/agent/me"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    secrets.push(forged);

    // Mallory guesses until locked (wrong codes are not secrets, but the
    // lock is logged and must name no code).
    let wrong = if created.code == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..6 {
        client
            .post(format!("{base}/v1/agent/redeem"))
            .bearer_auth(&mallory_token)
            .json(&json!({ "code": wrong }))
            .send()
            .await
            .unwrap();
    }

    // The JWT agent redeems, takes another ticket, follows by hand.
    let res = client
        .post(format!("{base}/v1/agent/redeem"))
        .bearer_auth(&jwt)
        .json(&json!({ "code": created.code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let redeemed: agent_assist_protocol::RedeemResponse = res.json().await.unwrap();
    let res = client
        .post(format!("{base}/v1/sessions/{id}/ticket"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    let ticket: agent_assist_protocol::StreamTicket = res.json().await.unwrap();
    secrets.extend([redeemed.stream_ticket.clone(), ticket.ticket.clone()]);
    let agent_stream = tokio::spawn(read_stream(
        client
            .get(format!("{base}/v1/sessions/{id}/events"))
            .query(&[("ticket", ticket.ticket.as_str()), ("last_event_id", "1")])
            .send()
            .await
            .unwrap(),
    ));
    // A wrong ticket is refused (and not logged either).
    let bad_ticket = "f".repeat(44);
    let res = client
        .get(format!("{base}/v1/sessions/{id}/events"))
        .query(&[("ticket", bad_ticket.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    secrets.push(bad_ticket);

    // Consent, status from both sides, the end.
    let res = client
        .post(format!("{base}/v1/sessions/{id}/consent"))
        .bearer_auth(&created.device_token)
        .json(&json!({ "allow": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for credential in [&created.device_token, &jwt] {
        let res = client
            .get(format!("{base}/v1/sessions/{id}"))
            .bearer_auth(credential)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = client
        .post(format!("{base}/v1/sessions/{id}/end"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let visitor_saw = visitor_stream.await.unwrap();
    let agent_saw = agent_stream.await.unwrap();
    assert!(visitor_saw.contains("agent_ended"), "{visitor_saw}");
    assert!(
        agent_saw.contains("agent_ended") && !agent_saw.contains("id: 1\n"),
        "{agent_saw}"
    );

    broker.signal("TERM");
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // Give the reader thread a moment to take the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let log = log.lock().unwrap().clone();

    // The log was really written at trace level, requests and all.
    for expected in [
        "code issued",
        "code redeemed",
        "consent given",
        "session ended",
        "redeeming locked",
        "/v1/sessions/",
        "/v1/agent/redeem",
        "broker stopped",
    ] {
        assert!(log.contains(expected), "no {expected:?} in the log:\n{log}");
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "{secret} leaked into the log:\n{log}"
        );
    }
    assert!(!log.contains("ticket="), "a query string leaked:\n{log}");
    // The code, as a number standing on its own anywhere but in the
    // timestamp that starts each line (whose microseconds are six digits).
    let code = created.code.as_str();
    for line in log.lines() {
        let rest = line.split_once(' ').map_or(line, |(_, rest)| rest);
        let digits: Vec<&str> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|run| !run.is_empty())
            .collect();
        assert!(!digits.contains(&code), "the code leaked: {line}");
    }
}

/// Every code in `created` is live in `store`, for its own session.
async fn assert_all_live(store: &SqliteStore, created: &[CreateCodeResponse]) {
    let now = SystemClock.now_ms();
    for c in created {
        assert_eq!(
            store
                .find_live_code("demo", &c.code, now)
                .await
                .unwrap()
                .as_deref(),
            Some(c.session_id.as_str())
        );
    }
}
