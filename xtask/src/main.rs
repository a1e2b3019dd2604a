//! `cargo xtask`: the project's build, demo, test and bench commands.
//!
//! # Layout
//! - `main.rs`: command dispatch and the small process/progress helpers.
//! - `tools.rs`: installs what is missing (wasm target, wasm-bindgen CLI at
//!   the exact version in Cargo.lock, wasm-opt from npm, Chromium, npm deps,
//!   schemathesis from PyPI).
//! - `build.rs`: builds `pkg/` (npm package) and `pkg/dist/` (script tag).
//! - `demo.rs`, `test.rs`, `bench.rs`: the commands of the same names.
//! - `schema.rs`: the `schema` test group, schemathesis against a live broker.
//!
//! Every command installs what it needs by itself and says what it is doing
//! in one short line per step, so a fresh machine needs nothing but Rust.

mod bench;
mod broker;
mod build;
mod demo;
mod schema;
mod test;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

pub type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo     build everything and run the demo at http://127.0.0.1:8080
  test     install what is missing and run every check and test
  bench    print size and speed figures (`bench broker`: the broker part only;
           `bench --store redis`: the broker on Redis next to redis-benchmark)
  fuzz     fuzz the broker's API for longer than `test` does (`fuzz 100000`: cases)
  build    build pkg/ (npm package) and pkg/dist/ (script-tag bundle)
  setup    install the tools the other commands need";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => test::fuzz(&args[1..]),
        Some("build") => tools::ensure_build_tools().and_then(|_| build::run()),
        Some("setup") => tools::ensure_build_tools().and_then(|_| tools::ensure_test_tools()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: error: {msg}");
            eprintln!("xtask: failed after {:.0?}", started.elapsed());
            ExitCode::FAILURE
        }
    }
}

/// The repository root (the folder above `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Runs `f` as a named step, printing its name and how long it took.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let started = Instant::now();
    let out = f();
    match &out {
        Ok(_) => eprintln!("    ok ({:.1}s)", started.elapsed().as_secs_f64()),
        Err(_) => eprintln!("    FAILED ({:.1}s)", started.elapsed().as_secs_f64()),
    }
    out
}

/// Runs a command to completion with inherited output; an error names it.
pub fn exec(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs a command and returns its stdout, or None if it cannot run or fails.
pub fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}
