//! `cargo xtask demo [--port N]`: builds everything and runs the broker with
//! its embedded SQLite store, serving the demo shop and the support page.

use crate::{build, cargo, exec, root, step, tools, Result};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub fn run(args: &[String]) -> Result {
    let port = match args {
        [] => 8080,
        [flag, n] if flag == "--port" => n
            .parse()
            .map_err(|_| format!("--port takes a number, not `{n}`"))?,
        _ => return Err("usage: cargo xtask demo [--port N]".into()),
    };
    tools::ensure_build_tools()?;
    build::run()?;
    step("building the broker", || {
        exec(cargo().args(["build", "--quiet", "--release", "-p", "agent-assist-broker"]))
    })?;

    let data = root().join("target/demo");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let config = data.join("sites.toml");
    std::fs::write(&config, demo_sites(port)).map_err(|e| e.to_string())?;
    let db = data.join("broker.sqlite3");
    let agent_token = demo_agent(&config, &db)?;

    eprintln!("==> starting the broker (SQLite store: target/demo/broker.sqlite3)");
    let mut child = Command::new(root().join("target/release/agent-assist-broker"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(&db)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--www")
        .arg(root().join("www"))
        .arg("--sdk")
        .arg(build::dist_dir())
        .arg("--examples")
        .arg(root().join("examples"))
        // The demo shop's fake login, which signs visitor identities the way
        // a real site's server would. Demo only; off unless asked for.
        .arg("--demo-login")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start the broker: {e}"))?;
    let stdout = child.stdout.take().ok_or("no broker stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains("listening on") => {
            let base = format!("http://127.0.0.1:{port}");
            println!();
            println!("  Agent Assist demo is running.");
            println!("    Demo shop (script tag, footer link):  {base}/");
            println!("    Standalone support-code page:         {base}/support.html");
            println!("    Custom UI on the bare API:            {base}/examples/custom-ui/");
            println!("    Agent console:                        {base}/agent.html");
            println!("      sign in with the demo agent's token:  {agent_token}");
            println!("    Site key: demo   Broker API: {base}/v1/");
            println!("  Press Ctrl-C to stop.");
            println!();
        }
        _ => {
            let status = child.wait().map_err(|e| e.to_string())?;
            return Err(format!(
                "the broker did not start ({status}); is port {port} in use? Try `cargo xtask demo --port 8081`"
            ));
        }
    }
    // Keep echoing whatever the broker prints until it stops (Ctrl-C reaches
    // it too, and it shuts down gracefully).
    for line in lines.map_while(|l| l.ok()) {
        println!("{line}");
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() || status.code().is_none() {
        eprintln!("==> demo stopped");
        Ok(())
    } else {
        Err(format!("the broker exited with {status}"))
    }
}

/// The demo agent's API token, made once with the broker's own CLI and kept
/// next to the demo database (both live in `target/demo/`).
fn demo_agent(config: &std::path::Path, db: &std::path::Path) -> Result<String> {
    let token_file = db.with_file_name("demo-agent-token.txt");
    if db.exists() {
        if let Ok(token) = std::fs::read_to_string(&token_file) {
            return Ok(token.trim().to_owned());
        }
    }
    // A database without the token file (or the reverse) is from an older
    // demo: start both afresh so the printed token works.
    for stale in [
        db.to_path_buf(),
        db.with_extension("sqlite3-wal"),
        db.with_extension("sqlite3-shm"),
    ] {
        let _ = std::fs::remove_file(stale);
    }
    let out = Command::new(root().join("target/release/agent-assist-broker"))
        .args([
            "agents",
            "add",
            "--site",
            "demo",
            "--name",
            "Dana (demo agent)",
        ])
        .arg("--config")
        .arg(config)
        .arg("--db")
        .arg(db)
        .output()
        .map_err(|e| format!("could not run the broker's `agents add`: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token="))
        .ok_or_else(|| {
            format!(
                "`agents add` printed no token: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?
        .trim()
        .to_owned();
    std::fs::write(&token_file, &token).map_err(|e| e.to_string())?;
    eprintln!("==> created the demo agent \"Dana (demo agent)\"");
    Ok(token)
}

/// The demo's site config: the origins the demo pages are served from.
pub fn demo_sites(port: u16) -> String {
    format!(
        r#"# Written by `cargo xtask demo`.
[[site]]
key = "demo"
name = "Lumen Home (demo shop)"
allowed_origins = ["http://127.0.0.1:{port}", "http://localhost:{port}"]
code_lifetime_secs = 1200
# Verifies agent JWTs minted by a CRM. A demo value: real sites keep theirs
# out of the file with `secret_env = "VARIABLE"`.
secret = "demo-only-secret-do-not-use-in-production-0001"
# Pages agents may see while a visitor shares their screen: all but the
# account page (there the agent sees "not shared", and nothing is sent).
share_pages = ["/*", "!/account.html"]
"#
    )
}
