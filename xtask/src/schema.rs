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

use crate::broker::Broker;
use crate::tools::{schemathesis, SCHEMATHESIS_VERSION};
use crate::{cargo, describe, exec, root, Result};
use std::path::Path;
use std::process::Command;

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

    let broker = Broker::start(&broker_bin(), &config, &db, &dir.join("broker.log"))?;
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
