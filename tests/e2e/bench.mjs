// `cargo xtask bench`'s browser and broker figures: click → code visible in
// headless Chromium, and codes issued per second by the broker, both against
// a real release broker on loopback. Prints a table; writes JSON to
// target/bench/latest.json. Timings live here, never in tests.
import { chromium } from "@playwright/test";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import os from "node:os";
import { Broker, ROOT } from "./broker.js";

const CLICKS = 50;
const MIRROR_CHANGES = 50;
const ACTIVITY_SECONDS = 10;
const LOAD_REQUESTS = 5000;
const LOAD_CONCURRENCY = 32;

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (v) => `${v.toFixed(1)} ms`;

async function clickToCode(broker) {
  const browser = await launch();
  const page = await browser.newPage();
  await page.goto(broker.url + "/");
  await page.getByRole("button", { name: "Agent Assist" }).waitFor();
  const samples = [];
  for (let i = 0; i < CLICKS + 5; i++) {
    const dt = await page.evaluate(async () => {
      const root = document.querySelector("agent-assist-widget").shadowRoot;
      const link = root.querySelector("button.link");
      const shown = new Promise((resolve) => {
        const seen = () => root.querySelector(".code");
        const obs = new MutationObserver(() => {
          if (seen()) {
            obs.disconnect();
            // Visible = the frame after the code is in the DOM.
            requestAnimationFrame(() => resolve(performance.now()));
          }
        });
        obs.observe(root, { childList: true, subtree: true });
      });
      const t0 = performance.now();
      link.click();
      const t1 = await shown;
      (await window.AgentAssist.ready).close();
      return t1 - t0;
    });
    if (i >= 5) samples.push(dt); // the first few warm up the JIT and the connection
  }
  await browser.close();
  samples.sort((a, b) => a - b);
  return { runs: samples.length, p50_ms: pct(samples, 50), p95_ms: pct(samples, 95) };
}

const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });

/**
 * Co-browsing on the demo shop: bytes of the snapshot, bytes per second of
 * typical activity (scrolling, pointer, typing, the basket changing), and
 * how long a change on the visitor's page takes to show in the agent's
 * console (both pages in one browser: `timeOrigin + now()` is one clock).
 */
async function cobrowse(broker) {
  const browser = await launch();
  const agent = await broker.addAgent("Bench agent");
  const visitor = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const sent = [];
  visitor.on("websocket", (ws) => ws.on("framesent", (f) => sent.push({ at: Date.now(), bytes: Buffer.byteLength(f.payload) , page: String(f.payload).startsWith('{"t":"page"') })));
  await visitor.goto(broker.url + "/");
  const codeAnswer = visitor.waitForResponse((r) => r.url().endsWith("/v1/codes"));
  await visitor.getByRole("button", { name: "Agent Assist" }).click();
  const { code } = await (await codeAnswer).json();

  const console_ = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await console_.goto(broker.url + "/agent.html");
  await console_.getByLabel("Agent token").fill(agent.token);
  await console_.getByRole("button", { name: "Sign in" }).click();
  await console_.getByRole("group", { name: "Support code" }).getByRole("textbox").first().waitFor();
  await console_.keyboard.type(code);
  await visitor.getByRole("button", { name: "Allow" }).click();
  const frame = console_.frameLocator('iframe[title="Visitor\'s screen"]');
  await frame.locator("#basket").waitFor();
  const snapshot = sent.find((f) => f.page)?.bytes ?? 0;

  // Typical activity for a while: the visitor scrolls, moves the pointer,
  // types a note, adds to the basket.
  const before = sent.length;
  const t0 = Date.now();
  const note = visitor.getByLabel("Delivery note");
  let i = 0;
  while (Date.now() - t0 < ACTIVITY_SECONDS * 1000) {
    await visitor.mouse.move(200 + (i * 37) % 800, 150 + (i * 53) % 500);
    if (i % 4 === 0) await note.press(String.fromCharCode(97 + (i % 26)));
    if (i % 20 === 0) await visitor.getByRole("button", { name: "Add to basket" }).first().click();
    if (i % 10 === 0) await visitor.mouse.wheel(0, i % 20 === 0 ? 200 : -200);
    await visitor.waitForTimeout(100);
    i++;
  }
  const secs = (Date.now() - t0) / 1000;
  const activity = sent.slice(before).reduce((n, f) => n + f.bytes, 0) / secs;

  // Change → visible in the console.
  const samples = [];
  for (let n = 0; n < MIRROR_CHANGES + 5; n++) {
    const text = `Basket (tick ${n})`;
    const seen = console_.evaluate((want) => {
      const doc = document.querySelector('iframe[title="Visitor\'s screen"]').contentDocument;
      return new Promise((resolve) => {
        const check = () => doc.getElementById("basket")?.textContent === want;
        const obs = new MutationObserver(() => {
          if (check()) {
            obs.disconnect();
            requestAnimationFrame(() => resolve(performance.timeOrigin + performance.now()));
          }
        });
        obs.observe(doc, { childList: true, subtree: true, characterData: true });
      });
    }, text);
    // Let the observer be in place before the change.
    await console_.evaluate(() => new Promise((r) => requestAnimationFrame(r)));
    const start = await visitor.evaluate((want) => {
      const t = performance.timeOrigin + performance.now();
      document.getElementById("basket").textContent = want;
      return t;
    }, text);
    const end = await seen;
    if (n >= 5) samples.push(end - start);
  }
  await browser.close();
  samples.sort((a, b) => a - b);
  return {
    snapshot_bytes: snapshot,
    activity_bytes_per_sec: activity,
    activity_secs: secs,
    change_to_visible: { runs: samples.length, p50_ms: pct(samples, 50), p95_ms: pct(samples, 95) },
  };
}

async function throughput(broker) {
  const latencies = [];
  let next = 0;
  let errors = 0;
  const body = JSON.stringify({ site_key: "demo" });
  const worker = async () => {
    while (next < LOAD_REQUESTS) {
      next++;
      const t0 = performance.now();
      const res = await fetch(broker.url + "/v1/codes", { method: "POST", headers: { "content-type": "application/json" }, body });
      await res.arrayBuffer();
      if (res.status !== 201) errors++;
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, worker));
  const secs = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    concurrency: LOAD_CONCURRENCY,
    errors,
    codes_per_sec: latencies.length / secs,
    p50_ms: pct(latencies, 50),
    p99_ms: pct(latencies, 99),
  };
}

const broker = await Broker.start({ env: { RUST_LOG: "warn" } });
try {
  const click = await clickToCode(broker);
  const mirror = await cobrowse(broker);
  const load = await throughput(broker);
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model?.trim() ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
  console.log("");
  console.log(`Click → code visible (headless Chromium, local release broker, ${click.runs} runs): p50 ${ms(click.p50_ms)}, p95 ${ms(click.p95_ms)}`);
  console.log(`Co-browsing the demo shop: snapshot ${(mirror.snapshot_bytes / 1000).toFixed(1)} KB, typical activity ${(mirror.activity_bytes_per_sec / 1000).toFixed(2)} KB/s (${mirror.activity_secs.toFixed(0)} s), change → visible in the agent's console p50 ${ms(mirror.change_to_visible.p50_ms)}, p95 ${ms(mirror.change_to_visible.p95_ms)} (${mirror.change_to_visible.runs} runs)`);
  console.log(`Broker POST /v1/codes (SQLite, ${load.requests} requests, ${load.concurrency} concurrent, Node fetch client): ${Math.round(load.codes_per_sec)} codes/s, p50 ${ms(load.p50_ms)}, p99 ${ms(load.p99_ms)}, errors ${load.errors}`);
  console.log(`Machine: ${machine}`);
  const out = path.join(ROOT, "target/bench");
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, "latest.json"), JSON.stringify({ machine, click, mirror, load, at: new Date().toISOString() }, null, 2));
  if (load.errors > 0) process.exitCode = 1;
} finally {
  await broker.stop();
  broker.cleanup();
}
