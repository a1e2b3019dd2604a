//! `cargo xtask bench`: size of everything the script tag loads, the
//! broker's figures (`bench/broker.rs`: throughput at a fixed load, raw
//! store rate, code allocation as the space fills, memory per live code),
//! and click → code visible in headless Chromium (`tests/e2e/bench.mjs`);
//! `--store redis` the broker on Redis (`bench/redis.rs`).
//! Timings live here, never in tests.

mod broker;
mod redis;

use crate::{build, cargo, exec, root, step, tools, Result};
use flate2::{write::GzEncoder, Compression};
use std::io::Write;
use std::process::Command;

pub fn run(args: &[String]) -> Result {
    // `cargo xtask bench broker` runs the broker's part alone (no browser);
    // `cargo xtask bench --store redis` the broker on Redis.
    let broker_only = match args {
        [] => false,
        [part] if part == "broker" => true,
        [flag, store] if flag == "--store" && store == "redis" => {
            let oha = broker::start_oha_install()?;
            tools::ensure_redis()?;
            build_broker()?;
            oha.wait()?;
            return redis::run();
        }
        _ => return Err("usage: cargo xtask bench [broker | --store redis]".into()),
    };
    // On a fresh machine the load generator builds while the rest does.
    let oha = broker::start_oha_install()?;
    if broker_only {
        build_broker()?;
        oha.wait()?;
        return broker::run();
    }
    tools::ensure_build_tools()?;
    tools::ensure_test_tools()?;
    // The bench-only install: the anchor SDK from npm (oha started above).
    tools::ensure_bench_deps()?;
    build::run()?;
    build_broker()?;
    oha.wait()?;

    println!();
    println!("Script-tag payload (everything the script tag loads: the script, which draws the link, and the boot wasm it fetches at idle):");
    let mut raw_total = 0;
    let mut gz_total = 0;
    for (name, raw, gz) in build::payload_sizes()? {
        println!("  {name:<24} {raw:>8} B raw {gz:>8} B gzip");
        raw_total += raw;
        gz_total += gz;
    }
    println!(
        "  {:<24} {:>8} B raw {:>8} B gzip ({:.1} KB)",
        "total",
        raw_total,
        gz_total,
        gz_total as f64 / 1000.0
    );
    println!();

    broker::run()?;

    step(
        "browser figures: page load, click → code visible, co-browsing (Node + Playwright)",
        || {
            exec(
                Command::new("node")
                    .arg("bench.mjs")
                    .current_dir(root().join("tests/e2e"))
                    .env(
                        "BROKER_BIN",
                        root().join("target/release/agent-assist-broker"),
                    )
                    .env("REPO_ROOT", root()),
            )
        },
    )
}

/// The release broker, and the store bench example built the same way.
fn build_broker() -> Result {
    step("building the broker and its store bench (release)", || {
        exec(cargo().args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "agent-assist-broker",
            "--bin",
            "agent-assist-broker",
            "--example",
            "store_bench",
        ]))
    })
}

/// Bytes after gzip at the highest level, as a CDN would serve them.
pub fn gzip_len(bytes: &[u8]) -> usize {
    gzip(bytes).len()
}

/// `bytes` compressed as `gzip -9` would.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn gzip_shrinks_repetitive_input() {
        let data = vec![b'a'; 10_000];
        let n = super::gzip_len(&data);
        assert!(n > 0 && n < 200, "{n}");
    }
}
