//! The `agent-assist-broker` binary as an operator runs it: the listening
//! line, signals, a kill and restart on the same file, a bad config file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent_assist_broker::clock::{Clock, SystemClock};
use agent_assist_broker::store::sqlite::SqliteStore;
use agent_assist_broker::store::Store;
use agent_assist_protocol::{CreateCodeResponse, SessionState, SessionStatus};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_agent-assist-broker");

const SITES: &str = r#"
[[site]]
key = "demo"
name = "Demo Shop"
allowed_origins = ["http://127.0.0.1:8080", "http://localhost:8080"]
"#;

/// A broker process; killed if the test fails before stopping it.
struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port and waits for its listening line.
fn start(dir: &Path) -> Process {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("sites.toml"))
        .arg("--db")
        .arg(dir.join("broker.sqlite3"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the broker prints its listening line");
    let base = line
        .strip_prefix("agent-assist-broker listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(!base.ends_with(":0"), "{base}");
    Process { child, base }
}

fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the broker did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{name} failed");
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
    signal(&broker.child, "TERM");
    let status = wait_exit(&mut broker.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn exits_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sites.toml"), SITES).unwrap();
    let mut broker = start(dir.path());
    signal(&broker.child, "INT");
    let status = wait_exit(&mut broker.child, Duration::from_secs(10));
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
    broker.child.kill().unwrap();
    broker.child.wait().unwrap();
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
    let now = SystemClock.now_ms();
    for c in &created {
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
