// Test fixtures: a real broker process (the binary `cargo xtask test`
// built) with a temporary SQLite file and a site config for its port.
import { test as base, expect } from "@playwright/test";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = process.env.REPO_ROOT || path.resolve(import.meta.dirname, "../..");
const BIN = process.env.BROKER_BIN || path.join(ROOT, "target/debug/agent-assist-broker");

/** A free loopback port: bind :0, read the port, release it. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function sitesToml(port) {
  const origins = `["http://127.0.0.1:${port}", "http://localhost:${port}"]`;
  return `[[site]]
key = "demo"
name = "Lumen Home"
allowed_origins = ${origins}

[[site]]
key = "short"
name = "Short-lived codes"
allowed_origins = ${origins}
code_lifetime_secs = 3
`;
}

export class Broker {
  constructor(port, dir) {
    this.port = port;
    this.dir = dir;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = "";
  }

  static async start() {
    const port = await freePort();
    const dir = mkdtempSync(path.join(tmpdir(), "agent-assist-e2e-"));
    writeFileSync(path.join(dir, "sites.toml"), sitesToml(port));
    const broker = new Broker(port, dir);
    await broker.spawn();
    return broker;
  }

  /** Starts the broker process and resolves once it is listening. */
  spawn() {
    const args = [
      "serve",
      "--config", path.join(this.dir, "sites.toml"),
      "--db", path.join(this.dir, "broker.sqlite3"),
      "--listen", `127.0.0.1:${this.port}`,
      "--www", path.join(ROOT, "www"),
      "--sdk", path.join(ROOT, "pkg/dist"),
      "--examples", path.join(ROOT, "examples"),
    ];
    const proc = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.stderr.on("data", (d) => (this.log += d));
    return new Promise((resolve, reject) => {
      let out = "";
      const onData = (d) => {
        out += d;
        if (out.includes("listening on")) {
          proc.stdout.off("data", onData);
          resolve();
        }
      };
      proc.stdout.on("data", onData);
      proc.once("exit", (code) => reject(new Error(`broker exited (${code}) before listening:\n${this.log}`)));
      proc.once("error", reject);
    });
  }

  /** Stops the broker (SIGTERM, graceful) and waits for it to exit. */
  stop() {
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
    });
  }

  /** Calls the broker's API directly, as a server (no Origin header). */
  async api(method, pathname, { token, body } = {}) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(this.url + pathname, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const test = base.extend({
  // One broker per test: tests stop and restart it, and each gets a clean store.
  broker: async ({}, use, testInfo) => {
    const broker = await Broker.start();
    await use(broker);
    await broker.stop();
    if (testInfo.status !== testInfo.expectedStatus) {
      await testInfo.attach("broker.log", { body: broker.log, contentType: "text/plain" });
    }
    broker.cleanup();
  },
});

export { expect };

/** The widget's locators, reached through its open shadow root. */
export function widget(page) {
  return {
    link: page.getByRole("button", { name: "Agent Assist" }),
    dialog: page.getByRole("dialog"),
    code: page.locator("agent-assist-widget .code"),
    time: page.locator("agent-assist-widget .time"),
    cancel: page.getByRole("dialog").getByRole("button", { name: "Cancel" }),
    close: page.getByRole("dialog").getByRole("button", { name: "Close" }),
  };
}

/** Waits for the page's POST /v1/codes answer and returns its JSON. */
export async function codeResponse(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/codes") && r.request().method() === "POST"),
    action(),
  ]);
  return { status: response.status(), body: await response.json() };
}
