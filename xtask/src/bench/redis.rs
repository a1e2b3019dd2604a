//! `cargo xtask bench --store redis`: the broker on Redis, next to Redis's
//! own rate for the operation at the heart of a code request.
//!
//! One redis-server of the bench's own (loopback, nothing on disk), then:
//! - `redis-benchmark`: `SET key v NX PX …` on random keys, the set-if-absent
//!   with expiry a code takes, 64 clients, no pipelining (as the broker's
//!   64 connections send);
//! - the release broker with `--store redis://…`: `POST /v1/codes` with
//!   `oha`, closed loop on 64 connections for the most it serves, and a
//!   fixed 2,000/s for the latency at an ordinary load.
//!
//! The budget: codes/s through the broker ≥ half of that SET NX rate.

use super::broker::{
    grouped, machine, oha, oha_codes, sites_toml, Load, LOAD_SECS, MAX_CONNECTIONS, OHA_VERSION,
};
use crate::broker::Broker;
use crate::{root, step, Result};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BUDGET_SHARE: f64 = 0.5;
const SET_NX_REQUESTS: u32 = 300_000;
const FIXED_RATE: u32 = 2_000;

/// A redis-server child on `port`, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(dir: &std::path::Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = std::fs::File::create(dir.join("redis.log")).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start redis-server: {e}"))?;
        let server = RedisServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.ping() {
            if Instant::now() > deadline {
                return Err("redis-server did not answer PING within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli INFO memory`'s used_memory, in bytes.
    fn used_memory(&self) -> u64 {
        crate::output(Command::new("redis-cli").args([
            "-p",
            &self.port.to_string(),
            "INFO",
            "memory",
        ]))
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-benchmark`'s SET NX PX rate on 64 clients, requests per second.
fn set_nx_rate(redis: &RedisServer) -> Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &redis.port.to_string()])
        .args(["-c", &MAX_CONNECTIONS.to_string()])
        .args([
            "-n",
            &SET_NX_REQUESTS.to_string(),
            "-r",
            "100000000",
            "--csv",
        ])
        .args(["SET", "code:__rand_int__", "session", "NX", "PX", "600000"])
        .output()
        .map_err(|e| format!("could not start redis-benchmark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // CSV: a header line, then `"SET code:…","<rps>",…`.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("\"SET"))
        .find_map(|l| l.split("\",\"").nth(1))
        .and_then(|v| v.trim_matches('"').parse().ok())
        .ok_or_else(|| format!("redis-benchmark printed no rate: {text}"))
}

/// The broker's HTTP stack alone: `GET /healthz` (no store) closed loop,
/// requests per second; what no store could take a code request past.
fn http_ceiling(broker: &Broker) -> Result<f64> {
    let out = Command::new(oha())
        .args(["--no-tui", "--json", "-z", &format!("{LOAD_SECS}s")])
        .args(["-c", &MAX_CONNECTIONS.to_string()])
        .arg(format!("{}/healthz", broker.url))
        .output()
        .map_err(|e| format!("could not start oha: {e}"))?;
    let report: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("oha printed no JSON ({e})"))?;
    Ok(report["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0))
}

pub fn run() -> Result {
    let work = root().join("target/bench/redis-run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let redis = RedisServer::start(&work)?;

    let set_nx = step(
        &format!("redis-benchmark: SET NX PX, {MAX_CONNECTIONS} clients"),
        || set_nx_rate(&redis),
    )?;
    let config = work.join("sites.toml");
    std::fs::write(&config, sites_toml(&["warm", "max", "fixed"])).map_err(|e| e.to_string())?;
    let url = redis.url();
    let http = step(
        "broker on Redis over HTTP with oha: maximum, then a fixed load",
        || {
            let broker = Broker::start_on(
                &root().join("target/release/agent-assist-broker"),
                &config,
                &["--store".as_ref(), url.as_ref()],
                &work.join("broker.log"),
            )?;
            oha_codes(
                &broker,
                "warm",
                Load::Closed {
                    secs: 3,
                    connections: MAX_CONNECTIONS,
                },
            )?;
            let max = oha_codes(
                &broker,
                "max",
                Load::Closed {
                    secs: LOAD_SECS,
                    connections: MAX_CONNECTIONS,
                },
            )?;
            let mut fixed = oha_codes(
                &broker,
                "fixed",
                Load::Fixed {
                    rate: FIXED_RATE,
                    secs: LOAD_SECS,
                },
            )?;
            fixed["offered_per_sec"] = json!(FIXED_RATE);
            let healthz = http_ceiling(&broker)?;
            let rss = broker.rss()?;
            broker.stop()?;
            Ok(json!({
                "max": max,
                "fixed": fixed,
                "healthz_per_sec": healthz,
                "broker_rss_bytes": rss,
            }))
        },
    )?;
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let max = num(&http["max"]["codes_per_sec"]);
    let share = if set_nx > 0.0 { max / set_nx } else { 0.0 };
    let live = num(&http["max"]["created"]) + num(&http["fixed"]["created"]) + 0.0;
    let report = json!({
        "machine": machine(),
        "load_generator": format!("oha {OHA_VERSION}"),
        "redis": output_version(),
        "set_nx_per_sec": set_nx,
        "http": http,
        "redis_used_memory_bytes": redis.used_memory(),
        "codes_made": live,
        "budgets": {
            "share_of_set_nx_rate": { "value": share, "budget": BUDGET_SHARE, "ok": share >= BUDGET_SHARE },
        },
    });
    let m = &report["machine"];
    println!();
    println!(
        "Broker on Redis (release build, loopback; {} cores, {}; {}; load generator {}):",
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        report["redis"].as_str().unwrap_or("redis"),
        report["load_generator"].as_str().unwrap_or("?")
    );
    let row = |what: &str, value: String, budget: &str, mark: &str| {
        println!("  {what:<44} {value:>18}   {budget:<12} {mark}");
    };
    let latency = |run: &Value| {
        let ms = format!("{:.1} / {:.1} ms", num(&run["p50_ms"]), num(&run["p99_ms"]));
        row("  p50 / p99 latency", ms, "", "");
    };
    row("figure", "measured".into(), "budget", "");
    row(
        &format!("redis-benchmark SET NX PX ({MAX_CONNECTIONS} clients)"),
        format!("{}/s", grouped(set_nx)),
        "",
        "",
    );
    row(
        &format!("broker codes/s, closed loop ({MAX_CONNECTIONS} conns)"),
        grouped(max),
        "",
        "",
    );
    latency(&http["max"]);
    row(
        "  share of the SET NX rate",
        format!("{:.0} %", share * 100.0),
        "≥ 50 %",
        if share >= BUDGET_SHARE { "✓" } else { "✗" },
    );
    let healthz = num(&http["healthz_per_sec"]);
    row(
        "the HTTP stack alone (GET /healthz)",
        format!("{}/s", grouped(healthz)),
        "",
        "",
    );
    row(
        "  its share of the SET NX rate",
        format!(
            "{:.0} %",
            if set_nx > 0.0 {
                healthz / set_nx * 100.0
            } else {
                0.0
            }
        ),
        "",
        "",
    );
    row(
        &format!(
            "codes/s at {}/s offered ({LOAD_SECS} s)",
            grouped(f64::from(FIXED_RATE))
        ),
        grouped(num(&http["fixed"]["codes_per_sec"])),
        "",
        "",
    );
    latency(&http["fixed"]);
    row(
        "errors (any run)",
        format!(
            "{}",
            num(&http["max"]["errors"]) + num(&http["fixed"]["errors"])
        ),
        "0",
        "",
    );
    let out = root().join("target/bench/broker-redis.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    println!("  (written to target/bench/broker-redis.json)");
    println!();
    Ok(())
}

fn output_version() -> String {
    crate::output(Command::new("redis-server").arg("--version"))
        .and_then(|v| {
            v.split_whitespace()
                .find_map(|w| w.strip_prefix("v="))
                .map(|v| format!("Redis {v}"))
        })
        .unwrap_or_else(|| "Redis".into())
}
