//! Installs the tools the other commands need, each only if missing, so a
//! second run costs a few version checks.

use crate::{cargo, exec, output, root, step, Result};
use std::path::PathBuf;
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Wasm target, wasm-bindgen CLI and wasm-opt.
pub fn ensure_build_tools() -> Result {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    ensure_wasm_opt()?;
    Ok(())
}

/// Chromium + ChromeDriver and the end-to-end suite's npm packages.
pub fn ensure_test_tools() -> Result {
    ensure_chromium()?;
    ensure_npm_deps(
        &root().join("tests/e2e"),
        "end-to-end test packages (Playwright)",
    )?;
    Ok(())
}

/// The bench's own npm packages: `cobrowse-sdk-js`, the anchor whose
/// script-tag bundle the bench weighs and loads next to ours. Kept out of
/// the end-to-end suite so tests never install it.
pub fn ensure_bench_deps() -> Result {
    ensure_npm_deps(
        &root().join("tests/bench"),
        "the bench's anchor (cobrowse-sdk-js)",
    )
}

fn ensure_wasm_target() -> Result {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    step(
        "installing the wasm32-unknown-unknown target (rustup)",
        || exec(Command::new("rustup").args(["target", "add", WASM_TARGET])),
    )
}

/// The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
pub fn wasm_bindgen_version() -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| format!("reading Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_owned());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry".into())
}

fn ensure_wasm_bindgen() -> Result {
    let want = wasm_bindgen_version()?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    let runner =
        output(Command::new("wasm-bindgen-test-runner").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(want.as_str()) && runner.contains(&want) {
        return Ok(());
    }
    step(
        &format!("installing wasm-bindgen-cli {want} (about 2 minutes, once)"),
        || {
            // Not --locked: the CLI's own lockfile pins a crate version the
            // registry here lacks (see shared TOOLCHAIN.md).
            exec(cargo().args(["install", "wasm-bindgen-cli", "--version", &want, "--force"]))
        },
    )
}

/// Folder of the npm-installed build tools.
pub fn tools_dir() -> PathBuf {
    root().join("xtask/tools")
}

pub fn wasm_opt() -> PathBuf {
    tools_dir().join("node_modules/.bin/wasm-opt")
}

pub fn esbuild() -> PathBuf {
    tools_dir().join("node_modules/.bin/esbuild")
}

fn ensure_wasm_opt() -> Result {
    // Debian's binaryen (v108) produces modules Chromium rejects; the npm
    // package's is current. esbuild (the JS minifier) comes along.
    ensure_npm_deps(&tools_dir(), "wasm-opt (npm binaryen) and esbuild")
}

/// `npm ci` in `dir` unless its node_modules matches its lockfile already.
pub fn ensure_npm_deps(dir: &std::path::Path, what: &str) -> Result {
    let lock = dir.join("package-lock.json");
    let stamp = dir.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&stamp)) {
        (Ok(l), Ok(s)) => match (l.modified(), s.modified()) {
            (Ok(l), Ok(s)) => s >= l,
            _ => false,
        },
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    step(&format!("installing {what} with npm ci"), || {
        exec(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .current_dir(dir),
        )
    })
}

/// The schemathesis release the schema step is written against (its CLI
/// options and check names change between minor versions).
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// The virtual environment schemathesis lives in: inside `target/`, so it
/// needs no root, touches nothing of the system's Python, and goes with
/// `cargo clean`.
fn schemathesis_venv() -> PathBuf {
    root().join("target/schemathesis")
}

pub fn schemathesis() -> PathBuf {
    schemathesis_venv().join("bin/schemathesis")
}

/// schemathesis at [`SCHEMATHESIS_VERSION`] from PyPI, in its own venv.
pub fn ensure_schemathesis() -> Result {
    let have = output(Command::new(schemathesis()).arg("--version")).unwrap_or_default();
    if have.split_whitespace().last() == Some(SCHEMATHESIS_VERSION) {
        return Ok(());
    }
    step(
        &format!("installing schemathesis {SCHEMATHESIS_VERSION} (PyPI) into target/schemathesis"),
        || {
            let venv = schemathesis_venv();
            if !venv.join("bin/python").exists() {
                exec(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            }
            exec(
                Command::new(venv.join("bin/python"))
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")),
            )
        },
    )
}

fn ensure_chromium() -> Result {
    if std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    step("installing chromium and chromium-driver (apt-get)", || {
        apt_install(&["chromium", "chromium-driver"])
    })
}

/// Debian's `redis-server`, for the broker suite's Redis run (each test
/// starts a server of its own) and `bench --store redis`.
pub fn ensure_redis() -> Result {
    if std::path::Path::new(REDIS_SERVER).exists() {
        return Ok(());
    }
    step("installing redis-server (apt-get)", || {
        apt_install(&["redis-server", "redis-tools"])
    })?;
    // The package starts a system-wide server on port 6379; nothing here
    // uses it, so it is stopped (each test and bench starts its own).
    let _ = Command::new("service")
        .args(["redis-server", "stop"])
        .output();
    Ok(())
}

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// `apt-get install` of `packages` (through sudo when not root).
fn apt_install(packages: &[&str]) -> Result {
    let sudo = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() != "0");
    let apt = |args: &[&str]| {
        let mut c = if sudo {
            Command::new("sudo")
        } else {
            Command::new("apt-get")
        };
        if sudo {
            c.arg("apt-get");
        }
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        exec(&mut c)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}
