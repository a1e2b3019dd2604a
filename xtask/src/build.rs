//! Builds the SDK's deliverables from its two wasm modules (one crate, see
//! `src/lib.rs`): the boot module, which the page loads, and the widget
//! module, which the boot module fetches on demand:
//! - `pkg/`: the npm package (boot ESM glue + wasm, `index.js` wrapper,
//!   types) with the widget module in `pkg/widget/`;
//! - `pkg/dist/`: the script-tag bundle (`agent-assist.js`: boot glue and
//!   loader in one classic script, + its `.wasm`) with the widget module in
//!   `pkg/dist/widget/`;
//!
//! and, from separate crates, so no page-load bundle grows:
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
    widget()?;
    cobrowse()?;
    console()?;
    step("gzip copies of pkg/dist/ (the broker serves them)", || {
        precompress(&dist_dir())
    })
}

/// Writes `name.gz` (gzip -9) beside every file under `dir`, which the
/// broker sends to browsers that accept gzip instead of compressing each
/// answer itself.
fn precompress(dir: &Path) -> Result {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            precompress(&path)?;
        } else if path.extension().is_some_and(|e| e != "gz") {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut name = path.clone().into_os_string();
            name.push(".gz");
            std::fs::write(&name, crate::bench::gzip(&bytes))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The visitor's SDK, boot module: `pkg/` and `pkg/dist/`.
fn sdk() -> Result {
    let wasm = wasm_release(
        "the SDK's boot module",
        "agent-assist",
        &["--features", "boot"],
    )?;
    step(
        "generating pkg/ (npm package) and pkg/dist/ (script tag)",
        || {
            let pkg = pkg_dir();
            let dist = dist_dir();
            // Start clean so a renamed file never lingers in the package.
            let _ = std::fs::remove_dir_all(&pkg);
            std::fs::create_dir_all(&dist).map_err(|e| e.to_string())?;

            bindgen(&wasm, &pkg, "web", "agent_assist")?;
            optimize_short_names(
                &pkg.join("agent_assist_bg.wasm"),
                &pkg.join("agent_assist.js"),
            )?;
            let js = root().join("src/js");
            let facade = with_link_css(&read(&js.join("facade.js"))?)?;
            let index = read(&js.join("index.js"))?.replace("// @facade\n", &facade);
            write(&pkg.join("index.js"), &index)?;
            copy(&js.join("index.d.ts"), &pkg.join("index.d.ts"))?;
            copy(&js.join("README.md"), &pkg.join("README.md"))?;
            let manifest =
                read(&js.join("package.json"))?.replace("0.0.0-version", env!("CARGO_PKG_VERSION"));
            write(&pkg.join("package.json"), &manifest)?;

            bindgen(&wasm, &dist, "no-modules", "agent-assist")?;
            optimize_short_names(
                &dist.join("agent-assist_bg.wasm"),
                &dist.join("agent-assist.js"),
            )?;
            // One classic script: the glue, the facade and the loader in one
            // closure, so the page gets no globals but `window.AgentAssist`.
            let glue = read(&dist.join("agent-assist.js"))?;
            let loader = read(&js.join("loader.js"))?;
            let bundle = format!(
                "/*! Agent Assist {} */\n(function () {{\n{glue}\n{facade}\n{loader}\n}})();\n",
                env!("CARGO_PKG_VERSION")
            );
            let bundle_path = dist.join("agent-assist.js");
            write(&bundle_path, &bundle)?;
            minify(&bundle_path)
        },
    )
}

/// The SDK's widget module, in `pkg/widget/` and `pkg/dist/widget/` (the
/// same files; the boot module imports `widget/agent_assist_widget.js` next
/// to itself). Runs after [`sdk`], which starts `pkg/` afresh.
fn widget() -> Result {
    let wasm = wasm_release("the SDK's widget module", "agent-assist", &[])?;
    step(
        "generating pkg/widget/ and pkg/dist/widget/ (widget module)",
        || module_pair(&wasm, "widget", "agent_assist_widget"),
    )
}

/// `wasm` as an ES module (`--target web` glue + optimised `.wasm`) named
/// `name`, in `pkg/{dir}/` and the same files in `pkg/dist/{dir}/`.
fn module_pair(wasm: &Path, dir: &str, name: &str) -> Result {
    let npm = pkg_dir().join(dir);
    let dist = dist_dir().join(dir);
    for d in [&npm, &dist] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    bindgen(wasm, &npm, "web", name)?;
    let bg = [name, "_bg.wasm"].concat();
    optimize(&npm.join(&bg))?;
    for file in [[name, ".js"].concat(), bg] {
        copy(&npm.join(&file), &dist.join(&file))?;
    }
    Ok(())
}

/// The co-browsing module, in `pkg/cobrowse/` and `pkg/dist/cobrowse/` (the
/// same files: the widget imports `cobrowse/agent_assist_cobrowse.js` next to
/// itself). Runs after [`sdk`], which starts `pkg/` afresh.
fn cobrowse() -> Result {
    let wasm = wasm_release("the co-browsing module", "agent-assist-cobrowse", &[])?;
    step(
        "generating pkg/cobrowse/ and pkg/dist/cobrowse/ (co-browsing)",
        || module_pair(&wasm, "cobrowse", "agent_assist_cobrowse"),
    )
}

/// The agent console: `pkg/dist/console/agent_console.js` (wasm-bindgen's
/// `--target web` glue, an ES module the page imports) and its `.wasm`.
/// Runs after [`sdk`], which starts `pkg/` afresh.
fn console() -> Result {
    let wasm = wasm_release("the agent console", "agent-assist-console", &[])?;
    step("generating pkg/dist/console/ (agent console)", || {
        let out = dist_dir().join("console");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        bindgen(&wasm, &out, "web", "agent_console")?;
        optimize(&out.join("agent_console_bg.wasm"))
    })
}

/// Builds `package`'s library for wasm with the size-tuned `wasm` profile and returns the `.wasm`
/// that cargo wrote (the crate name with underscores), with `features`
/// (cargo arguments) on.
fn wasm_release(what: &str, package: &str, features: &[&str]) -> Result<PathBuf> {
    step(&format!("building {what} (Rust -> wasm, release)"), || {
        exec(
            cargo()
                .args([
                    "build",
                    "--quiet",
                    "--profile",
                    "wasm",
                    "--lib",
                    "-p",
                    package,
                    "--target",
                    WASM_TARGET,
                ])
                .args(features),
        )?;
        let file = format!("wasm/{}.wasm", package.replace('-', "_"));
        Ok(root().join("target").join(WASM_TARGET).join(file))
    })
}

/// wasm-bindgen's glue for `wasm` (no TypeScript: `src/js/index.d.ts` is
/// the package's types, written by hand).
fn bindgen(wasm: &Path, out: &Path, target: &str, name: &str) -> Result {
    let mut cmd = Command::new("wasm-bindgen");
    cmd.arg(wasm)
        .args([
            "--target",
            target,
            "--out-name",
            name,
            "--remove-name-section",
            "--remove-producers-section",
            // Every browser the widget supports has `encodeInto`; the
            // fallback would only add bytes.
            "--encode-into",
            "always",
            "--no-typescript",
        ])
        .arg("--out-dir")
        .arg(out);
    exec(&mut cmd)
}

/// `wasm-opt -Oz` rewriting `wasm` in place, with `extra` passes.
fn wasm_opt_cmd(wasm: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(wasm_opt());
    cmd.arg("-Oz")
        // Browsers ignore the section; it is only bytes on the wire.
        .arg("--strip-target-features")
        .args(WASM_FEATURES)
        .args(extra)
        .arg(wasm)
        .arg("-o")
        .arg(wasm);
    cmd
}

fn optimize(wasm: &Path) -> Result {
    exec(&mut wasm_opt_cmd(wasm, &[]))
}

/// [`optimize`], and also gives every import and export of `wasm` a one-
/// or two-letter name, rewriting its wasm-bindgen glue `js` to match. The
/// generated names end in 16-hex-digit hashes that no compressor shrinks
/// and appear twice (in the wasm and in the glue); this is the boot
/// module's, which every page loads, so its bytes count most.
fn optimize_short_names(wasm: &Path, js: &Path) -> Result {
    let mut cmd = wasm_opt_cmd(wasm, &["--minify-imports-and-exports-and-modules"]);
    let map = crate::output(&mut cmd).ok_or_else(|| format!("{} failed", crate::describe(&cmd)))?;
    let map: serde_json::Value =
        serde_json::from_str(&map).map_err(|e| format!("wasm-opt's name map: {e}"))?;
    let pairs = |key: &str, old: usize, new: usize| -> Result<Vec<(String, String)>> {
        let list = map[key].as_array().ok_or("wasm-opt printed no name map")?;
        list.iter()
            .map(|entry| {
                let field = |i: usize| entry[i].as_str().map(str::to_owned);
                field(old)
                    .zip(field(new))
                    .ok_or_else(|| format!("odd {key} entry {entry}"))
            })
            .collect()
    };
    let imports = pairs("imports", 1, 2)?;
    let exports = pairs("exports", 0, 1)?;
    let modules: std::collections::BTreeSet<String> = map["imports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry[0].as_str().map(str::to_owned))
        .collect();

    let mut glue = read(js)?;
    // The glue's one import object is keyed by module; wasm-opt merges the
    // modules into one named `a`.
    for module in &modules {
        glue = glue.replace(&format!("\"{module}\":"), "\"a\":");
    }
    let imports: std::collections::HashMap<_, _> = imports.into_iter().collect();
    let exports: std::collections::HashMap<_, _> = exports.into_iter().collect();
    let glue = rename_identifiers(&glue, |prev, word| {
        if prev.ends_with("wasm.") {
            exports.get(word)
        } else {
            imports.get(word)
        }
    });
    for old in imports.keys() {
        if glue.contains(old.as_str()) {
            return Err(format!("{}: `{old}` left after renaming", js.display()));
        }
    }
    write(js, &glue)
}

/// `text` with each identifier (`[A-Za-z0-9_$]+`) that `rename` maps (given
/// the text before it) replaced.
fn rename_identifiers<'a>(text: &str, rename: impl Fn(&str, &str) -> Option<&'a String>) -> String {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_ident) {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let end = from.find(|c: char| !is_ident(c)).unwrap_or(from.len());
        let (word, after) = from.split_at(end);
        match rename(&out, word) {
            Some(new) => out.push_str(new),
            None => out.push_str(word),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Everything the script tag loads with the page: the bundle (boot glue,
/// facade, loader, which draws the footer link) and the boot module's wasm
/// (CSS inside), which it fetches once the page is idle or the visitor
/// shows intent.
pub const PAYLOAD: [&str; 2] = ["agent-assist.js", "agent-assist_bg.wasm"];

/// `(file, raw bytes, gzip -9 bytes)` of each [`PAYLOAD`] file as built.
pub fn payload_sizes() -> Result<Vec<(&'static str, usize, usize)>> {
    PAYLOAD
        .iter()
        .map(|&name| {
            let bytes = std::fs::read(dist_dir().join(name)).map_err(|e| format!("{name}: {e}"))?;
            Ok((name, bytes.len(), crate::bench::gzip_len(&bytes)))
        })
        .collect()
}

/// `facade` (facade.js) with the link's stylesheet (`src/ui/link.css`,
/// minified) in place of its `"@link-css"` string: the boot module's host
/// adopts it, and the script tag draws its early link with it.
fn with_link_css(facade: &str) -> Result<String> {
    const MARK: &str = "\"@link-css\"";
    if facade.matches(MARK).count() != 1 {
        return Err(format!(
            "facade.js must hold {MARK} once, for the link's stylesheet"
        ));
    }
    let src = root().join("src/ui/link.css");
    let css = crate::output(
        Command::new(esbuild())
            .arg(&src)
            .args(["--minify", "--log-level=warning"]),
    )
    .ok_or_else(|| format!("esbuild could not minify {}", src.display()))?;
    let literal = serde_json::to_string(css.trim()).map_err(|e| e.to_string())?;
    Ok(facade.replace(MARK, &literal))
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
