//! Builds the SDK's two deliverables from one wasm module:
//! - `pkg/`: the npm package (ESM glue, wasm, `index.js` wrapper, types);
//! - `pkg/dist/`: the script-tag bundle (`agent-assist.js` + its `.wasm`);
//!
//! and, from separate wasm modules so the page-load bundle does not grow:
//! - the co-browsing module, which the widget imports only once a visitor
//!   allows a session: `pkg/cobrowse/` (npm) and `pkg/dist/cobrowse/`
//!   (script tag), ES module glue + `.wasm`;
//! - the agent console: `pkg/dist/console/` (ES module glue + `.wasm`), which
//!   the broker serves at `/sdk/console/` for `www/agent.html`.

use crate::tools::{esbuild, wasm_opt, WASM_TARGET};
use crate::{cargo, exec, root, step, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Features the Rust wasm target emits by default, which wasm-opt must accept.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

pub fn pkg_dir() -> PathBuf {
    root().join("pkg")
}

pub fn dist_dir() -> PathBuf {
    pkg_dir().join("dist")
}

pub fn run() -> Result {
    sdk()?;
    cobrowse()?;
    console()
}

/// The visitor's SDK: `pkg/` and `pkg/dist/`.
fn sdk() -> Result {
    let wasm = wasm_release("the SDK", "agent-assist")?;
    step(
        "generating pkg/ (npm package) and pkg/dist/ (script tag)",
        || {
            let pkg = pkg_dir();
            let dist = dist_dir();
            // Start clean so a renamed file never lingers in the package.
            let _ = std::fs::remove_dir_all(&pkg);
            std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;

            bindgen(&wasm, &pkg, "web", "agent_assist", true)?;
            optimize(&pkg.join("agent_assist_bg.wasm"))?;
            let js = root().join("src/js");
            copy(&js.join("index.js"), &pkg.join("index.js"))?;
            copy(&js.join("index.d.ts"), &pkg.join("index.d.ts"))?;
            copy(&js.join("README.md"), &pkg.join("README.md"))?;
            let manifest =
                read(&js.join("package.json"))?.replace("0.0.0-version", env!("CARGO_PKG_VERSION"));
            write(&pkg.join("package.json"), &manifest)?;

            bindgen(&wasm, &dist, "no-modules", "agent-assist", false)?;
            optimize(&dist.join("agent-assist_bg.wasm"))?;
            // One classic script: the glue and the loader in one closure, so the
            // page gets no globals but `window.AgentAssist`.
            let glue = read(&dist.join("agent-assist.js"))?;
            let loader = read(&js.join("loader.js"))?;
            let bundle = format!(
                "/*! Agent Assist {} */\n(function () {{\n{glue}\n{loader}\n}})();\n",
                env!("CARGO_PKG_VERSION")
            );
            let bundle_path = dist.join("agent-assist.js");
            write(&bundle_path, &bundle)?;
            minify(&bundle_path)
        },
    )
}

/// The co-browsing module, in `pkg/cobrowse/` and `pkg/dist/cobrowse/` (the
/// same files: the widget imports `cobrowse/agent_assist_cobrowse.js` next to
/// itself). Runs after [`sdk`], which starts `pkg/` afresh.
fn cobrowse() -> Result {
    let wasm = wasm_release("the co-browsing module", "agent-assist-cobrowse")?;
    step(
        "generating pkg/cobrowse/ and pkg/dist/cobrowse/ (co-browsing)",
        || {
            let npm = pkg_dir().join("cobrowse");
            let dist = dist_dir().join("cobrowse");
            for dir in [&npm, &dist] {
                let _ = std::fs::remove_dir_all(dir);
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            bindgen(&wasm, &npm, "web", "agent_assist_cobrowse", false)?;
            optimize(&npm.join("agent_assist_cobrowse_bg.wasm"))?;
            for file in ["agent_assist_cobrowse.js", "agent_assist_cobrowse_bg.wasm"] {
                copy(&npm.join(file), &dist.join(file))?;
            }
            Ok(())
        },
    )
}

/// The agent console: `pkg/dist/console/agent_console.js` (wasm-bindgen's
/// `--target web` glue, an ES module the page imports) and its `.wasm`.
/// Runs after [`sdk`], which starts `pkg/` afresh.
fn console() -> Result {
    let wasm = wasm_release("the agent console", "agent-assist-console")?;
    step("generating pkg/dist/console/ (agent console)", || {
        let out = dist_dir().join("console");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        bindgen(&wasm, &out, "web", "agent_console", false)?;
        optimize(&out.join("agent_console_bg.wasm"))
    })
}

/// Builds `package`'s library for wasm in release and returns the `.wasm`
/// that cargo wrote (the crate name with underscores).
fn wasm_release(what: &str, package: &str) -> Result<PathBuf> {
    step(&format!("building {what} (Rust -> wasm, release)"), || {
        exec(cargo().args([
            "build",
            "--quiet",
            "--release",
            "--lib",
            "-p",
            package,
            "--target",
            WASM_TARGET,
        ]))?;
        let file = format!("release/{}.wasm", package.replace('-', "_"));
        Ok(root().join("target").join(WASM_TARGET).join(file))
    })
}

fn bindgen(wasm: &Path, out: &Path, target: &str, name: &str, typescript: bool) -> Result {
    let mut cmd = Command::new("wasm-bindgen");
    cmd.arg(wasm)
        .args([
            "--target",
            target,
            "--out-name",
            name,
            "--remove-name-section",
            "--remove-producers-section",
        ])
        .arg("--out-dir")
        .arg(out);
    if !typescript {
        cmd.arg("--no-typescript");
    }
    exec(&mut cmd)
}

fn optimize(wasm: &Path) -> Result {
    exec(
        Command::new(wasm_opt())
            .arg("-Oz")
            .args(WASM_FEATURES)
            .arg(wasm)
            .arg("-o")
            .arg(wasm),
    )
}

/// Minifies the script-tag bundle in place (npm users' bundlers minify
/// their own builds, so `pkg/` stays readable).
fn minify(js: &Path) -> Result {
    let out = js.with_extension("min.js");
    exec(
        Command::new(esbuild())
            .arg(js)
            .args([
                "--minify",
                "--target=es2019",
                "--log-level=warning",
                "--legal-comments=inline",
            ])
            .arg(format!("--outfile={}", out.display())),
    )?;
    std::fs::rename(&out, js).map_err(|e| e.to_string())
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))
}

fn write(p: &Path, s: &str) -> Result {
    std::fs::write(p, s).map_err(|e| format!("writing {}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copying {}: {e}", from.display()))
}
