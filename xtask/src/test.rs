//! `cargo xtask test [lint|native|schema|wasm|examples|e2e]…`: every check and
//! test, or only the named groups. Installs what is missing first.

use crate::tools::{self, CHROMEDRIVER, WASM_TARGET};
use crate::{build, cargo, exec, root, schema, step, Result};
use std::process::Command;

/// The broker's test files that drive the API through `tests/common`'s
/// broker, and so run on either backend. The others start the broker
/// binary over a SQLite file (CLI, crashes, the WAL under load).
const REDIS_SUITE: [&str; 10] = [
    "agents",
    "api",
    "creation_limits",
    "events",
    "fuzz",
    "identity",
    "mirror",
    "openapi",
    "server",
    "sessions",
];

const GROUPS: [&str; 6] = ["lint", "native", "schema", "wasm", "examples", "e2e"];

pub fn run(args: &[String]) -> Result {
    for a in args {
        if !GROUPS.contains(&a.as_str()) {
            return Err(format!(
                "unknown test group `{a}` (groups: {})",
                GROUPS.join(", ")
            ));
        }
    }
    let want = |g: &str| args.is_empty() || args.iter().any(|a| a == g);

    tools::ensure_build_tools()?;
    if want("wasm") || want("e2e") {
        tools::ensure_test_tools()?;
    }
    if want("schema") {
        tools::ensure_schemathesis()?;
    }
    if want("native") || want("e2e") {
        tools::ensure_redis()?;
    }

    if want("lint") {
        step("cargo fmt --check", || {
            exec(cargo().args(["fmt", "--all", "--", "--check"]))
        })?;
        step(
            "clippy -D warnings (broker, protocol, xtask, SDK native)",
            || {
                exec(cargo().args([
                    "clippy",
                    "--quiet",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            },
        )?;
        step(
            "clippy -D warnings (SDK, co-browsing module, agent console for wasm32)",
            || {
                exec(cargo().args([
                    "clippy",
                    "--quiet",
                    "-p",
                    "agent-assist",
                    "-p",
                    "agent-assist-cobrowse",
                    "-p",
                    "agent-assist-console",
                    "--all-targets",
                    "--target",
                    WASM_TARGET,
                    "--",
                    "-D",
                    "warnings",
                ]))
            },
        )?;
        step("clippy -D warnings (SDK boot module for wasm32)", || {
            exec(cargo().args([
                "clippy",
                "--quiet",
                "-p",
                "agent-assist",
                "--features",
                "boot",
                "--lib",
                "--target",
                WASM_TARGET,
                "--",
                "-D",
                "warnings",
            ]))
        })?;
    }
    if want("native") {
        step(
            "native tests: protocol, broker API (SQLite), SDK logic, xtask",
            || exec(cargo().args(["test", "--quiet", "--workspace"])),
        )?;
        // The same broker API suite again, over Redis: each test starts a
        // redis-server of its own (tests/common/redis.rs).
        step("native tests: broker API suite again, on Redis", || {
            let mut c = cargo();
            c.args(["test", "--quiet", "-p", "agent-assist-broker"]);
            for t in REDIS_SUITE {
                c.args(["--test", t]);
            }
            exec(c.env("AGENT_ASSIST_TEST_STORE", "redis"))
        })?;
    }
    if want("schema") {
        step(
            &format!(
                "schema: schemathesis (all checks, {} examples per operation) against the \
                 broker's /v1/openapi.json",
                schema::MAX_EXAMPLES
            ),
            schema::run,
        )?;
    }
    if want("wasm") {
        step(
            "browser tests: wasm-bindgen-test in headless Chromium (SDK, co-browsing, agent console)",
            || {
                exec(
                    cargo()
                        .args([
                            "test",
                            "-p",
                            "agent-assist",
                            "-p",
                            "agent-assist-cobrowse",
                            "-p",
                            "agent-assist-console",
                            "--lib",
                            "--target",
                            WASM_TARGET,
                        ])
                        .env("CHROMEDRIVER", CHROMEDRIVER)
                        .env("WASM_BINDGEN_TEST_TIMEOUT", "60"),
                )
            },
        )?;
    }
    if want("examples") || want("e2e") {
        build::run()?;
        step(
            "script-tag payload within its budget (issue 6: 32 KB gzip)",
            payload_within_budget,
        )?;
    }
    if want("examples") {
        let npm_example = root().join("examples/npm");
        tools::ensure_npm_deps(&npm_example, "the npm example's packages (Vite)")?;
        step(
            "examples/npm: TypeScript types, Vite build, import under Node (no DOM)",
            || {
                exec(
                    Command::new("npm")
                        .args(["run", "--silent", "typecheck"])
                        .current_dir(&npm_example),
                )?;
                exec(
                    Command::new("npm")
                        .args(["run", "--silent", "build"])
                        .current_dir(&npm_example),
                )?;
                exec(
                    Command::new("node")
                        .arg("check-ssr.mjs")
                        .current_dir(&npm_example),
                )
            },
        )?;
    }
    if want("e2e") {
        step("building the broker", || {
            exec(cargo().args(["build", "--quiet", "-p", "agent-assist-broker"]))
        })?;
        step(
            "end-to-end: Playwright + headless Chromium against the real broker",
            || {
                exec(
                    Command::new("npx")
                        .args(["playwright", "test"])
                        .current_dir(root().join("tests/e2e"))
                        .env(
                            "BROKER_BIN",
                            root().join("target/debug/agent-assist-broker"),
                        )
                        .env("REPO_ROOT", root()),
                )
            },
        )?;
    }
    eprintln!("==> all tests passed");
    Ok(())
}

/// Issue 6's budget, gzip bytes: under a fifth of the best-known co-browsing
/// SDK's script-tag bundle.
pub const PAYLOAD_BUDGET: usize = 32_000;

/// Sizes are deterministic (same sources, same tools), so this is a test;
/// timings are not, and live in `cargo xtask bench`.
fn payload_within_budget() -> Result {
    let sizes = build::payload_sizes()?;
    let total: usize = sizes.iter().map(|(_, _, gz)| gz).sum();
    let parts: Vec<_> = sizes
        .iter()
        .map(|(name, _, gz)| format!("{name} {gz} B"))
        .collect();
    eprintln!(
        "    {} = {total} B gzip (budget {PAYLOAD_BUDGET} B)",
        parts.join(" + ")
    );
    if total > PAYLOAD_BUDGET {
        return Err(format!(
            "the script-tag payload is {total} B gzip, over the {PAYLOAD_BUDGET} B budget: \
             move what page load does not need into the widget module (src/lib.rs)"
        ));
    }
    Ok(())
}

/// `cargo xtask fuzz [CASES]`: the broker's request fuzzing
/// (`crates/broker/tests/fuzz.rs`) with many more cases than the 300 of
/// `cargo xtask test` (20,000 unless told), on an optimised build.
pub fn fuzz(args: &[String]) -> Result {
    let cases =
        match args {
            [] => 20_000,
            [n] => n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("`{n}` is not a number of cases (a whole number above 0)")
            })?,
            _ => return Err("usage: cargo xtask fuzz [CASES]".to_owned()),
        };
    step(&format!("fuzzing the broker API: {cases} requests"), || {
        exec(
            cargo()
                .args([
                    "test",
                    "--release",
                    "-p",
                    "agent-assist-broker",
                    "--test",
                    "fuzz",
                    "--",
                    "--nocapture",
                ])
                .env("AGENT_ASSIST_FUZZ_CASES", cases.to_string()),
        )
    })
}
