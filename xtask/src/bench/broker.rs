//! The broker's figures: throughput at a fixed offered load, the raw store
//! rate beside it, code allocation as the space fills, and memory per live
//! code. Prints one table and writes `target/bench/broker.json`.
//!
//! The load generator is `oha` (crates.io), not Debian's `wrk`: `wrk` is a
//! closed loop (each connection sends its next request when the last one
//! is answered), so it cannot hold an offered load fixed, and a slow answer
//! silently lowers the load instead of showing in the latency. `oha -q N
//! --latency-correction` sends N requests a second whatever the broker does
//! and times each from when it was due, so queueing shows up in p99. It is
//! pinned at 1.4.1: from 1.4.2 on it needs `aws-lc-rs`, and the newest
//! (1.16) takes ~9.5 minutes to build on this 2-core machine against ~3
//! for 1.4.1, which has everything used here (`-q`, `--latency-correction`,
//! `-z`, JSON output).
//!
//! Everything runs on loopback on this machine: the load generator shares
//! the two cores with the broker, as a co-located client would.
//!
//! What the store rows compare: the raw rate is one `sessions` row per
//! commit with the store's own pragmas and checkpointing (see the store
//! bench, `crates/broker/examples/store_bench.rs`). The broker commits the
//! code requests that arrive together in one transaction (group commit,
//! each answered after that commit), so its closed-loop maximum is a whole
//! code request each — five tables' rows — against a bare single-row
//! commit, with the broker's batching allowed to close the gap.

use crate::broker::Broker;
use crate::{cargo, describe, output, root, step, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The `oha` release the bench parses the JSON of.
pub(super) const OHA_VERSION: &str = "1.4.1";

/// Fixed offered loads, requests per second, each held for [`LOAD_SECS`].
/// The second is the budget's: offered a little above 5,000/s, so that the
/// codes served, which the window's edges trim slightly, are the figure
/// the budget is checked on.
const RATES: [u32; 2] = [2_000, 5_100];
pub(super) const LOAD_SECS: u32 = 10;
/// Connections for the fixed loads: enough that 5,100/s never waits for a
/// free connection unless answers take over 12 ms.
const FIXED_CONNECTIONS: u32 = 64;
/// Connections for the closed-loop maximum (as `wrk -c 64` would use).
pub(super) const MAX_CONNECTIONS: u32 = 64;
/// Rounds of the throughput figures (the store's raw rate, the fixed loads,
/// the maximum); the table shows each figure's median.
const ROUNDS: u32 = 3;
/// Live codes made through the API for the memory figure.
const MEMORY_CODES: u32 = 100_000;

/// Budgets from issue 6.
const BUDGET_RATE: f64 = 5_000.0;
const BUDGET_P99_MS: f64 = 20.0;
const BUDGET_RAW_SHARE: f64 = 0.5;
const BUDGET_ALLOC_P99_US: f64 = 1_000.0;
const BUDGET_BYTES_PER_CODE: f64 = 1_024.0;

/// An `oha` install running in the background (its output in a log file),
/// so that on a fresh machine it builds while the rest does: the wasm
/// builds leave a core idle most of the time. Waited for before anything
/// is measured, so it never shares the machine with a measurement.
/// Nothing runs when `oha` was there already.
pub struct OhaInstall {
    child: Option<std::process::Child>,
    log: PathBuf,
}

/// Starts installing `oha` at [`OHA_VERSION`] with cargo unless it is there
/// already.
pub fn start_oha_install() -> Result<OhaInstall> {
    let dir = root().join("target/bench");
    let log = dir.join("oha-install.log");
    if oha_version().as_deref() == Some(OHA_VERSION) {
        return Ok(OhaInstall { child: None, log });
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
    let file = std::fs::File::create(&log)
        .map_err(|e| format!("could not create {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = cargo();
    cmd.args([
        "install",
        "oha",
        "--version",
        OHA_VERSION,
        "--locked",
        "--force",
    ])
    .stdout(file)
    .stderr(err);
    eprintln!(
        "==> installing oha {OHA_VERSION}, the HTTP load generator, in the background \
         (about 3 minutes, once; output in target/bench/oha-install.log)"
    );
    let child = cmd
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", describe(&cmd)))?;
    Ok(OhaInstall {
        child: Some(child),
        log,
    })
}

impl OhaInstall {
    /// Waits for the install; a failure shows the end of its log.
    pub fn wait(mut self) -> Result {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        step(
            &format!("waiting for the oha {OHA_VERSION} install to finish"),
            || {
                let status = child.wait().map_err(|e| format!("oha install: {e}"))?;
                if status.success() && oha_version().as_deref() == Some(OHA_VERSION) {
                    return Ok(());
                }
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(15)..];
                Err(format!(
                    "installing oha {OHA_VERSION} failed ({status}); the end of {}:\n{}",
                    self.log.display(),
                    tail.join("\n")
                ))
            },
        )
    }
}

/// A bench that fails before it waits does not leave the install running.
impl Drop for OhaInstall {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn oha_version() -> Option<String> {
    let out = output(Command::new(oha()).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

/// `oha` from `PATH`, else from cargo's own bin folder (where `cargo install`
/// puts it, which a fresh shell may not have on `PATH` yet).
pub(super) fn oha() -> PathBuf {
    if output(Command::new("oha").arg("--version")).is_some() {
        return PathBuf::from("oha");
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    cargo_home.join("bin/oha")
}

/// Runs every broker measurement, prints the table and writes the JSON.
pub fn run() -> Result {
    let work = root().join("target/bench/broker-run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    let space = step(
        "code allocation as the space fills (bulk fill to 1,000,000 codes)",
        || {
            store_bench(
                &work,
                &["code-space", &path_arg(&work.join("space")), "1000", "200"],
            )
        },
    )?;
    remove_databases(&work.join("space"));
    let (store, http) = http(&work)?;

    let report = report(store, space, http);
    print_table(&report);
    let out = root().join("target/bench/broker.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    println!("  (written to target/bench/broker.json)");
    println!();
    Ok(())
}

/// The SQLite files in `dir` (hundreds of megabytes); the logs stay for
/// reading.
fn remove_databases(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().contains(".sqlite3") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One figure set from several rounds of the same measurement: every number
/// the median of the rounds' (each field on its own, nested objects
/// likewise), the errors added up (one failed request in any round
/// counts), and the rounds themselves under `rounds`.
fn medians(rounds: &[Value]) -> Value {
    fn merge(values: &[&Value]) -> Value {
        match values.first() {
            Some(Value::Object(first)) => Value::Object(
                first
                    .keys()
                    .map(|k| {
                        let field: Vec<&Value> = values.iter().map(|v| &v[k.as_str()]).collect();
                        let merged = if k == "errors" {
                            json!(field.iter().filter_map(|v| v.as_f64()).sum::<f64>())
                        } else {
                            merge(&field)
                        };
                        (k.clone(), merged)
                    })
                    .collect(),
            ),
            Some(Value::Number(_)) => {
                let mut nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                json!(median(&mut nums))
            }
            Some(other) => (*other).clone(),
            None => Value::Null,
        }
    }
    let mut out = merge(&rounds.iter().collect::<Vec<_>>());
    out["rounds"] = json!(rounds);
    out
}

pub(super) fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs the store bench example (built with the release broker) and reads
/// the JSON it prints; its stderr (the broker's log) goes to a file.
fn store_bench(work: &Path, args: &[&str]) -> Result<Value> {
    let dir = Path::new(args[1]).file_name().unwrap_or_default();
    let log_path = work.join(format!("store_bench-{}.log", dir.to_string_lossy()));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(root().join("target/release/examples/store_bench"));
    cmd.args(args).stderr(log);
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(&cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}); see {}",
            describe(&cmd),
            out.status,
            log_path.display()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("store_bench printed no JSON: {e}"))
}

/// A release broker on a free loopback port with its own SQLite file in
/// `dir`, serving `sites`.
fn start_broker(dir: &Path, sites: &[&str]) -> Result<Broker> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let config = dir.join("sites.toml");
    std::fs::write(&config, sites_toml(sites)).map_err(|e| e.to_string())?;
    Broker::start(
        &root().join("target/release/agent-assist-broker"),
        &config,
        &dir.join("broker.sqlite3"),
        &dir.join("broker.log"),
    )
}

/// Sites with every limit that could get in the way opened wide: the
/// longest code lifetime (nothing expires during the run) and visitor mode
/// (no identity required).
pub(super) fn sites_toml(keys: &[&str]) -> String {
    let mut s = String::from("# Written by `cargo xtask bench`.\n");
    for key in keys {
        s.push_str(&format!(
            "[[site]]\nkey = \"{key}\"\nname = \"Bench {key}\"\n\
             allowed_origins = [\"http://127.0.0.1\"]\ncode_lifetime_secs = 86400\n\
             # One load generator on one address: the creation limits would\n\
             # refuse it, so they are off.\n\
             [site.create_limits]\nvisitor_live = 0\nvisitor_per_minute = 0\n\
             address_live = 0\naddress_per_minute = 0\nsite_live = 0\n\n"
        ));
    }
    s
}

/// How long `oha` sends, and at what pace.
pub(super) enum Load {
    /// A fixed number of requests, closed loop.
    Count(u32, u32),
    /// Closed loop for `secs` on `connections`.
    Closed { secs: u32, connections: u32 },
    /// `rate` requests a second for `secs`, timed from when each was due.
    Fixed { rate: u32, secs: u32 },
}

/// `POST /v1/codes` for `site` under `load`; `oha`'s JSON summary.
pub(super) fn oha_codes(broker: &Broker, site: &str, load: Load) -> Result<Value> {
    let mut cmd = Command::new(oha());
    cmd.args(["--no-tui", "--json", "-m", "POST"])
        .args(["-T", "application/json"])
        .args(["-d", &format!(r#"{{"site_key":"{site}"}}"#)]);
    match load {
        Load::Count(n, c) => cmd.args(["-n", &n.to_string(), "-c", &c.to_string()]),
        Load::Closed { secs, connections } => {
            cmd.args(["-z", &format!("{secs}s"), "-c", &connections.to_string()])
        }
        Load::Fixed { rate, secs } => cmd
            .args(["-z", &format!("{secs}s"), "-q", &rate.to_string()])
            .args(["-c", &FIXED_CONNECTIONS.to_string(), "--latency-correction"]),
    };
    cmd.arg(format!("{}/v1/codes", broker.url));
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {}: {e}", describe(&cmd)))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            describe(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("oha printed no JSON ({e}); is it version {OHA_VERSION}?"))?;
    Ok(summarise(&report))
}

/// `oha`'s error for a request cut off by the end of a `-z` run.
const DEADLINE_ERROR: &str = "aborted due to deadline";

/// What the table needs from one `oha` report.
fn summarise(report: &Value) -> Value {
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let secs = num(&report["summary"]["total"]);
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let created = statuses.get("201").map_or(0.0, num);
    let other_status: f64 = statuses
        .iter()
        .filter(|(code, _)| code.as_str() != "201")
        // A fold from +0.0: an empty float `sum` is -0.0, printed "-0".
        .fold(0.0, |sum, (_, n)| sum + num(n));
    // Requests still in flight when a timed run ends are cut off and
    // reported as this error; they are the run's edge, not the broker's.
    let errors = report["errorDistribution"].as_object();
    let cut_off = errors.and_then(|m| m.get(DEADLINE_ERROR)).map_or(0.0, num);
    let failed: f64 = errors
        .into_iter()
        .flatten()
        .filter(|(e, _)| e.as_str() != DEADLINE_ERROR)
        .fold(0.0, |sum, (_, n)| sum + num(n));
    let ms = |p: &str| num(&report["latencyPercentiles"][p]) * 1000.0;
    json!({
        "created": created,
        "errors": other_status + failed,
        "cut_off_at_end": cut_off,
        "secs": secs,
        "codes_per_sec": if secs > 0.0 { created / secs } else { 0.0 },
        "p50_ms": ms("p50"),
        "p99_ms": ms("p99"),
        "max_ms": num(&report["summary"]["slowest"]) * 1000.0,
    })
}

/// The memory figure, then [`ROUNDS`] rounds of: the raw store rate (its
/// own process, while the broker idles), each fixed load and the closed-loop
/// maximum. Alternating rounds let a spell of noise from the machine touch
/// both sides of the raw-store ratio, and the medians leave one bad round
/// out. Returns the store figures and the HTTP figures.
fn http(work: &Path) -> Result<(Value, Value)> {
    let mut sites = vec!["warm".to_owned(), "memory".to_owned()];
    for round in 1..=ROUNDS {
        sites.extend(RATES.iter().map(|r| format!("rate-{r}-{round}")));
        sites.push(format!("max-{round}"));
    }
    let site_refs: Vec<&str> = sites.iter().map(String::as_str).collect();
    let broker = start_broker(&work.join("http"), &site_refs)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_start = broker.rss()?;

    // Memory first, on a fresh broker: idle after a short warm-up (thread
    // pools, statement cache, allocator arenas are there in any serving
    // broker), then with 100,000 live codes made through the API.
    let memory = step("broker memory: 100,000 codes through the API", || {
        oha_codes(&broker, "warm", Load::Count(2_000, 16))?;
        std::thread::sleep(Duration::from_secs(1));
        let rss_idle = broker.rss()?;
        let filled = oha_codes(&broker, "memory", Load::Count(MEMORY_CODES, 16))?;
        std::thread::sleep(Duration::from_secs(1));
        let rss_filled = broker.rss()?;
        let live = filled["created"].as_f64().unwrap_or(0.0);
        Ok(json!({
            "rss_start_bytes": rss_start,
            "rss_idle_bytes": rss_idle,
            "rss_with_codes_bytes": rss_filled,
            "live_codes": live,
            "errors": filled["errors"],
            "bytes_per_code": (rss_filled as f64 - rss_idle as f64) / live.max(1.0),
        }))
    })?;
    oha_codes(
        &broker,
        "warm",
        Load::Closed {
            secs: 3,
            connections: MAX_CONNECTIONS,
        },
    )?;

    // Each load of each round has a site of its own, so no run's codes
    // crowd another's code space (each stays under 10 % full).
    let mut store_rounds = Vec::new();
    let mut fixed_rounds: Vec<Vec<Value>> = vec![Vec::new(); RATES.len()];
    let mut max_rounds = Vec::new();
    for round in 1..=ROUNDS {
        let name = format!(
            "round {round} of {ROUNDS}: raw SQLite insert rate and the store's code \
             transaction, then the broker at {} and closed loop (oha)",
            RATES
                .map(|r| format!("{}/s", grouped(f64::from(r))))
                .join(", ")
        );
        step(&name, || {
            let dir = work.join(format!("store-{round}"));
            store_rounds.push(store_bench(work, &["store-rate", &path_arg(&dir), "3"])?);
            remove_databases(&dir);
            for (i, rate) in RATES.iter().enumerate() {
                let mut figures = oha_codes(
                    &broker,
                    &format!("rate-{rate}-{round}"),
                    Load::Fixed {
                        rate: *rate,
                        secs: LOAD_SECS,
                    },
                )?;
                figures["offered_per_sec"] = json!(rate);
                fixed_rounds[i].push(figures);
            }
            max_rounds.push(oha_codes(
                &broker,
                &format!("max-{round}"),
                Load::Closed {
                    secs: LOAD_SECS,
                    connections: MAX_CONNECTIONS,
                },
            )?);
            Ok(())
        })?;
    }
    let rss_end = broker.rss()?;
    broker.stop()?;
    remove_databases(&work.join("http"));

    let mut memory = memory;
    memory["rss_end_bytes"] = json!(rss_end);
    let http = json!({
        "rounds": ROUNDS,
        "fixed": fixed_rounds.iter().map(|r| medians(r)).collect::<Vec<_>>(),
        "max": medians(&max_rounds),
        "max_connections": MAX_CONNECTIONS,
        "fixed_connections": FIXED_CONNECTIONS,
        "memory": memory,
    });
    Ok((medians(&store_rounds), http))
}

pub(super) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": (mem_kb as f64 / 1_048_576.0).round(),
        "kernel": output(Command::new("uname").arg("-r")).unwrap_or_default().trim(),
    })
}

/// Everything measured, each budget's figure next to it with a verdict.
fn report(store: Value, space: Value, http: Value) -> Value {
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    // The broker's capacity (closed loop) against the store's, round by
    // round (measured a minute apart at most), then the median: a fixed
    // load below capacity would understate the share.
    let rounds = |v: &Value| v["rounds"].as_array().cloned().unwrap_or_default();
    let shares: Vec<f64> = rounds(&store)
        .iter()
        .zip(rounds(&http["max"]).iter())
        .map(|(store, max)| {
            let raw = num(&store["raw_inserts_per_sec"]);
            if raw > 0.0 {
                num(&max["codes_per_sec"]) / raw
            } else {
                0.0
            }
        })
        .collect();
    let share = median(&mut shares.clone());
    let at_budget = http["fixed"]
        .as_array()
        .and_then(|f| f.iter().find(|f| num(&f["offered_per_sec"]) >= BUDGET_RATE))
        .cloned()
        .unwrap_or(Value::Null);
    // "≥ 5,000 codes/s at p99 ≤ 20 ms": at the load offered above 5,000/s,
    // at least 5,000 codes a second answered, none failed, and p99 within
    // budget.
    let served = num(&at_budget["codes_per_sec"]);
    let rate_ok = served >= BUDGET_RATE && num(&at_budget["errors"]) == 0.0;
    let p99_ok = num(&at_budget["p99_ms"]) <= BUDGET_P99_MS;
    let alloc_90 = space["levels"]
        .as_array()
        .and_then(|l| l.iter().find(|l| num(&l["occupancy"]) == 0.90))
        .cloned()
        .unwrap_or(Value::Null);
    // The budget is the allocation's: finding a free code among the
    // request's candidates, the 0.1 % that find none after all their tries
    // included. The whole request (its durable commit, the handler) is
    // printed beside it; its tail is the commit's, which the throughput
    // rows measure.
    let alloc_ok = num(&alloc_90["allocation"]["p99_us"]) <= BUDGET_ALLOC_P99_US
        && num(&alloc_90["other"]) == 0.0;
    let per_code = num(&http["memory"]["bytes_per_code"]);
    json!({
        "machine": machine(),
        "load_generator": format!("oha {OHA_VERSION}"),
        "store": store,
        "http": http,
        "code_space": space,
        "budgets": {
            "codes_per_sec_at_budget_load": { "value": served, "budget": BUDGET_RATE, "ok": rate_ok },
            "p99_ms_at_budget_load": { "value": at_budget["p99_ms"], "budget": BUDGET_P99_MS, "ok": p99_ok },
            "share_of_raw_store_rate": { "value": share, "rounds": shares, "budget": BUDGET_RAW_SHARE, "ok": share >= BUDGET_RAW_SHARE },
            "allocation_p99_us_at_90pct": { "value": alloc_90["allocation"]["p99_us"], "budget": BUDGET_ALLOC_P99_US, "ok": alloc_ok },
            "bytes_per_live_code": { "value": per_code, "budget": BUDGET_BYTES_PER_CODE, "ok": per_code <= BUDGET_BYTES_PER_CODE },
        },
    })
}

/// `12,345` for 12345.4.
pub(super) fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(r: &Value) {
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let verdict = |b: &Value| {
        if b["ok"].as_bool() == Some(true) {
            "✓"
        } else {
            "✗"
        }
    };
    let row = |what: &str, value: String, budget: &str, mark: &str| {
        println!("  {what:<46} {value:>24}   {budget:<12} {mark}");
    };
    // One figure of each round, in order: "4,998 · 4,997 · 4,999".
    let each = |v: &Value, f: &dyn Fn(&Value) -> String| {
        let rounds = v["rounds"].as_array().cloned().unwrap_or_default();
        rounds.iter().map(f).collect::<Vec<_>>().join(" · ")
    };
    let b = &r["budgets"];
    let m = &r["machine"];
    println!();
    println!(
        "Broker (release build, SQLite store, loopback; {} cores, {}; load generator {}):",
        m["cores"],
        m["cpu"].as_str().unwrap_or("?"),
        r["load_generator"].as_str().unwrap_or("?")
    );
    row("figure", "measured".into(), "budget", "");
    for f in r["http"]["fixed"].as_array().into_iter().flatten() {
        let offered = num(&f["offered_per_sec"]);
        let is_budget = offered >= BUDGET_RATE;
        row(
            &format!(
                "codes/s at {}/s offered ({LOAD_SECS} s each)",
                grouped(offered)
            ),
            grouped(num(&f["codes_per_sec"])),
            if is_budget { "≥ 5,000" } else { "" },
            if is_budget {
                verdict(&b["codes_per_sec_at_budget_load"])
            } else {
                ""
            },
        );
        row(
            "  p50 / p99 latency",
            format!("{:.1} / {:.1} ms", num(&f["p50_ms"]), num(&f["p99_ms"])),
            if is_budget { "p99 ≤ 20 ms" } else { "" },
            if is_budget {
                verdict(&b["p99_ms_at_budget_load"])
            } else {
                ""
            },
        );
        row(
            "  p99 in each round",
            each(f, &|r| format!("{:.1}", num(&r["p99_ms"]))) + " ms",
            "",
            "",
        );
        row("  errors (all rounds)", grouped(num(&f["errors"])), "", "");
    }
    let max = &r["http"]["max"];
    row(
        &format!("max codes/s (closed loop, {MAX_CONNECTIONS} connections)"),
        grouped(num(&max["codes_per_sec"])),
        "",
        "",
    );
    row(
        "  p50 / p99 latency, errors",
        format!(
            "{:.1} / {:.1} ms, {}",
            num(&max["p50_ms"]),
            num(&max["p99_ms"]),
            grouped(num(&max["errors"]))
        ),
        "",
        "",
    );
    row(
        "  codes/s in each round",
        each(max, &|r| grouped(num(&r["codes_per_sec"]))),
        "",
        "",
    );
    let store = &r["store"];
    // A latency summary's p50 / p99 in microseconds.
    let micros =
        |l: &serde_json::Value| format!("{:.0} / {:.0} µs", num(&l["p50_us"]), num(&l["p99_us"]));
    row(
        "raw SQLite insert/s (1 row per transaction)",
        grouped(num(&store["raw_inserts_per_sec"])),
        "",
        "",
    );
    row(
        "  p50 / p99 per transaction",
        micros(&store["raw_latency"]),
        "",
        "",
    );
    row(
        "  insert/s in each round",
        each(store, &|r| grouped(num(&r["raw_inserts_per_sec"]))),
        "",
        "",
    );
    row(
        "store's code transaction/s (serial, no HTTP)",
        grouped(num(&store["store_creates_per_sec"])),
        "",
        "",
    );
    row(
        "  p50 / p99 per transaction",
        micros(&store["store_latency"]),
        "",
        "",
    );
    row(
        "max codes/s ÷ raw insert/s",
        format!(
            "{:.0} %",
            num(&b["share_of_raw_store_rate"]["value"]) * 100.0
        ),
        "≥ 50 %",
        verdict(&b["share_of_raw_store_rate"]),
    );
    let shares: Vec<String> = b["share_of_raw_store_rate"]["rounds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{:.0}", num(s) * 100.0))
        .collect();
    row("  in each round", shares.join(" · ") + " %", "", "");
    for l in r["code_space"]["levels"].as_array().into_iter().flatten() {
        let occ = num(&l["occupancy"]) * 100.0;
        let refused = num(&l["no_free_codes"]["count"]);
        let requests = num(&l["requests"]);
        if occ <= 99.0 {
            let is_budget = (occ - 90.0).abs() < 0.01;
            row(
                &format!("allocate a code at {occ:.0}% live (store)"),
                format!(
                    "{:.0} / {:.0} µs",
                    num(&l["allocation"]["p50_us"]),
                    num(&l["allocation"]["p99_us"])
                ),
                if is_budget { "p99 ≤ 1 ms" } else { "" },
                if is_budget {
                    verdict(&b["allocation_p99_us_at_90pct"])
                } else {
                    ""
                },
            );
            row(
                "  whole request, commit included (in process)",
                format!(
                    "{:.0} / {:.0} µs",
                    num(&l["all"]["p50_us"]),
                    num(&l["all"]["p99_us"])
                ),
                "",
                "",
            );
            row(
                &format!(
                    "  refused no_free_codes (expected {:.1} %)",
                    num(&l["expected_no_free_share"]) * 100.0
                ),
                format!("{} of {}", grouped(refused), grouped(requests)),
                "",
                "",
            );
        } else {
            row(
                &format!("no_free_codes answer at {occ}% live"),
                format!(
                    "{:.0} / {:.0} µs",
                    num(&l["no_free_codes"]["p50_us"]),
                    num(&l["no_free_codes"]["p99_us"])
                ),
                "",
                "",
            );
            row(
                "  refused no_free_codes",
                format!("{} of {}", grouped(refused), grouped(requests)),
                "",
                "",
            );
        }
    }
    let mem = &r["http"]["memory"];
    row(
        &format!(
            "RSS idle / with {} live codes",
            grouped(num(&mem["live_codes"]))
        ),
        format!(
            "{:.1} / {:.1} MB",
            num(&mem["rss_idle_bytes"]) / 1e6,
            num(&mem["rss_with_codes_bytes"]) / 1e6
        ),
        "",
        "",
    );
    row(
        "bytes of RSS per live code",
        format!("{:.0} B", num(&mem["bytes_per_code"])),
        "≤ 1,024 B",
        verdict(&b["bytes_per_live_code"]),
    );
    println!(
        "  (p50 / p99; HTTP latencies from when each request was due; in-process rows \
         time the whole request through the app, without a socket; allocation rows \
         time the store's choice of a free code among the request's 64 candidates;\n   \
         throughput and store rows: the median of {} rounds, each the store's raw rate \
         then the broker's loads, and the ratio the median of the rounds' ratios)",
        r["http"]["rounds"]
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0.0), "0");
        assert_eq!(grouped(999.4), "999");
        assert_eq!(grouped(1_000.0), "1,000");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
    }

    #[test]
    fn rounds_merge_into_medians_and_errors_add_up() {
        let rounds = [
            json!({ "codes_per_sec": 4_990.0, "errors": 0.0, "lat": { "p99_us": 900 }, "kind": "a" }),
            json!({ "codes_per_sec": 1_000.0, "errors": 2.0, "lat": { "p99_us": 100 }, "kind": "a" }),
            json!({ "codes_per_sec": 5_000.0, "errors": 1.0, "lat": { "p99_us": 300 }, "kind": "a" }),
        ];
        let m = medians(&rounds);
        assert_eq!(m["codes_per_sec"], 4_990.0);
        assert_eq!(m["errors"], 3.0);
        assert_eq!(m["lat"]["p99_us"], 300.0);
        assert_eq!(m["kind"], "a");
        assert_eq!(m["rounds"].as_array().map(Vec::len), Some(3));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn an_oha_report_counts_only_201_as_codes() {
        let report = json!({
            "summary": { "total": 2.0, "slowest": 0.010 },
            "latencyPercentiles": { "p50": 0.001, "p99": 0.004 },
            "statusCodeDistribution": { "201": 10_000, "503": 3 },
            "errorDistribution": { "connection refused": 2, "aborted due to deadline": 7 },
        });
        let s = summarise(&report);
        assert_eq!(s["codes_per_sec"], 5_000.0);
        assert_eq!(s["errors"], 5.0);
        assert_eq!(s["p99_ms"], 4.0);
    }
}
