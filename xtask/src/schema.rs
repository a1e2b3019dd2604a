//! `cargo xtask test schema`: schemathesis against a live broker, driven by
//! the broker's own OpenAPI document (`GET /v1/openapi.json`).
//!
//! The debug broker runs on a free loopback port over a fresh database in
//! `target/schema/`, with one site and one agent, whose API token is sent
//! with every request so the agent's routes get past authentication. Half
//! the generated `site_key`s are the site's (`demo`, a schemathesis
//! dictionary), so code requests reach the code path and the stateful
//! phase follows real sessions. Every check runs, each operation gets a bounded number
//! of examples, and any finding fails the step. The broker is stopped by
//! its pid afterwards, whatever the outcome.

use crate::tools::{schemathesis, SCHEMATHESIS_VERSION};
use crate::{cargo, describe, exec, root, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// Examples per operation and phase: 40–50 s on a 2-core machine.
pub const MAX_EXAMPLES: u32 = 200;

/// Creation limits off: one fuzzer on one address would hit them at once
/// and see only 429s; `site_live = 0` also keeps 503 `no_free_codes` out.
const SITES: &str = r#"# Written by `cargo xtask test schema`.
[[site]]
key = "demo"
name = "Fuzz"
allowed_origins = ["http://127.0.0.1"]
[site.create_limits]
visitor_live = 0
visitor_per_minute = 0
address_live = 0
address_per_minute = 0
site_live = 0
"#;

/// schemathesis's own settings, for what its command line cannot say.
const SCHEMATHESIS_TOML: &str = r#"# Written by `cargo xtask test schema`.
[dictionaries.sites]
values = ["demo"]

[parameters]
"body.site_key" = { dictionary = "sites", probability = 0.5 }
"#;

pub fn run() -> Result {
    exec(cargo().args(["build", "--quiet", "-p", "agent-assist-broker"]))?;
    let dir = root().join("target/schema");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let config = dir.join("sites.toml");
    std::fs::write(&config, SITES).map_err(|e| e.to_string())?;
    let settings = dir.join("schemathesis.toml");
    std::fs::write(&settings, SCHEMATHESIS_TOML).map_err(|e| e.to_string())?;
    let db = dir.join("broker.sqlite3");
    let token = add_agent(&config, &db)?;

    let broker = Broker::start(&dir, &config, &db)?;
    let found = exec(
        Command::new(schemathesis())
            .arg("--no-color")
            .arg("--config-file")
            .arg(&settings)
            .arg("run")
            .arg(format!("{}/v1/openapi.json", broker.url))
            .args(["--checks", "all"])
            .args(["--max-examples", &MAX_EXAMPLES.to_string()])
            // One worker: with two, Python 3.11's `ast.parse` (which
            // Hypothesis calls to describe filters) fails now and then
            // when two threads parse at once.
            .args(["--workers", "1"])
            // No example database: each run starts afresh, and nothing is
            // written outside target/.
            .args(["--generation-database", "none"])
            .arg("--continue-on-failure")
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .current_dir(&dir),
    );
    let stopped = broker.stop();
    found.map_err(|e| {
        format!(
            "{e}: schemathesis {SCHEMATHESIS_VERSION} found the broker answering against \
             its document (see above; the broker's log is {})",
            dir.join("broker.log").display()
        )
    })?;
    stopped
}

/// `agents add` on the schema run's database; the token it prints.
fn add_agent(config: &Path, db: &Path) -> Result<String> {
    let mut cmd = Command::new(broker_bin());
    cmd.args(["agents", "add", "--site", "demo", "--name", "Fuzz"])
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db);
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(&cmd)))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .map(str::to_owned)
        .ok_or_else(|| format!("{} printed no token", describe(&cmd)))
}

fn broker_bin() -> std::path::PathBuf {
    root().join("target/debug/agent-assist-broker")
}

/// The broker under test.
struct Broker {
    child: Child,
    url: String,
    // Held so the broker's stdout stays open for as long as it runs.
    _stdout: BufReader<ChildStdout>,
}

impl Broker {
    fn start(dir: &Path, config: &Path, db: &Path) -> Result<Self> {
        let log = std::fs::File::create(dir.join("broker.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(broker_bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--db")
            .arg(db)
            // Port 0: the broker picks a free one and prints it.
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("could not start the broker: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no broker stdout")?);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        match line
            .trim()
            .strip_prefix("agent-assist-broker listening on ")
        {
            Some(url) => Ok(Self {
                url: url.to_owned(),
                child,
                _stdout: stdout,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "the broker did not start; see {}",
                    dir.join("broker.log").display()
                ))
            }
        }
    }

    /// SIGTERM to the broker's pid (it drains and exits), then waits.
    fn stop(mut self) -> Result {
        let pid = self.child.id().to_string();
        exec(Command::new("kill").args(["-TERM", &pid]))?;
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Only if `stop` was not reached: the broker must not outlive the step.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
