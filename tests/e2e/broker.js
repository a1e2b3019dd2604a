// A real broker process (the binary `cargo xtask` built) with a temporary
// SQLite file and a site config for its port. Used by the Playwright
// fixtures and by the bench.
import { spawn, execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync, existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { mintIdentity } from "../../examples/identity/mint-identity.mjs";

export const ROOT = process.env.REPO_ROOT || path.resolve(import.meta.dirname, "../..");
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

/** The `demo` site's secret in tests (40 characters), for signing agent JWTs. */
export const TEST_SITE_SECRET = "e2e-test-secret-0123456789abcdefghijklmn";

/** `extraOrigins`: sites' own origins (see site.js), allowed on every site. */
export function sitesToml(port, extraOrigins = []) {
  const origins = JSON.stringify([`http://127.0.0.1:${port}`, `http://localhost:${port}`, ...extraOrigins]);
  return `[[site]]
key = "demo"
name = "Lumen Home"
allowed_origins = ${origins}
secret = "${TEST_SITE_SECRET}"
share_pages = ["/*", "!/account.html"]
# Tests (and the bench's 105 clicks) ask for many codes from one browser;
# the site "limited" below shows the creation limits.
create_limits = { visitor_live = 0, visitor_per_minute = 0, address_live = 0, address_per_minute = 0 }

[[site]]
key = "short"
name = "Short-lived codes"
allowed_origins = ${origins}
code_lifetime_secs = 3

[[site]]
key = "bank"
name = "Signed-in customers only (code mode)"
allowed_origins = ${origins}
auth_mode = "code"
secret = "${TEST_SITE_SECRET}"
time_zone = "Europe/Paris"

[[site]]
key = "form"
name = "Name and email required (form mode)"
allowed_origins = ${origins}
auth_mode = "form"

[[site]]
key = "limited"
name = "Two codes a minute"
allowed_origins = ${origins}
create_limits = { visitor_per_minute = 2 }

[[site]]
key = "optional"
name = "Name and email optional (optional-form mode)"
allowed_origins = ${origins}
auth_mode = "optional-form"
`;
}

export class Broker {
  constructor(port, dir, env = {}, store = null) {
    this.port = port;
    this.dir = dir;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.log = "";
    this.env = env;
    this.store = store;
  }

  /**
   * `env` adds to the broker's environment (e.g. `RUST_LOG`); `origins`
   * are other origins its sites allow (a site served by site.js); `store`
   * a Redis URL to use instead of a SQLite file (see replicas.js).
   */
  static async start({ env, origins, store } = {}) {
    const port = await freePort();
    const dir = mkdtempSync(path.join(tmpdir(), "agent-assist-e2e-"));
    writeFileSync(path.join(dir, "sites.toml"), sitesToml(port, origins));
    const broker = new Broker(port, dir, env, store);
    await broker.spawn();
    return broker;
  }

  /** Where the broker keeps its state, as its CLI takes it. */
  get storeArgs() {
    return this.store ? ["--store", this.store] : ["--db", this.dbPath];
  }

  get configPath() {
    return path.join(this.dir, "sites.toml");
  }

  get capturePath() {
    return path.join(this.dir, "mirror-capture.bin");
  }

  /** Everything the broker received on mirror sockets so far (a Buffer). */
  captured() {
    return existsSync(this.capturePath) ? readFileSync(this.capturePath) : Buffer.alloc(0);
  }

  get dbPath() {
    return path.join(this.dir, "broker.sqlite3");
  }

  /** Starts the broker process and resolves once it is listening. */
  spawn() {
    const args = [
      "serve",
      "--config", this.configPath,
      ...this.storeArgs,
      "--listen", `127.0.0.1:${this.port}`,
      "--www", path.join(ROOT, "www"),
      "--sdk", path.join(ROOT, "pkg/dist"),
      "--examples", path.join(ROOT, "examples"),
      // The demo shop's fake login (a test broker, like the demo's).
      "--demo-login",
      // Every byte received on mirror sockets, for the privacy tests.
      "--mirror-capture", this.capturePath,
    ];
    const proc = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...this.env } });
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

  /** Runs the broker binary's CLI (e.g. `agents …`) and resolves to its stdout. */
  cli(args) {
    return new Promise((resolve, reject) => {
      execFile(BIN, args, { env: { ...process.env, ...this.env } }, (err, stdout, stderr) => {
        if (err) reject(new Error(`agent-assist-broker ${args.slice(0, 2).join(" ")} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  }

  /**
   * Adds an agent with the broker's own CLI (`agents add`, same config and
   * database as the running broker) and resolves to `{ id, token }`.
   */
  async addAgent(name, { site = "demo" } = {}) {
    const out = await this.cli(["agents", "add", "--config", this.configPath, ...this.storeArgs, "--site", site, "--name", name]);
    const field = (key) => out.match(new RegExp(`^${key}=(\\S+)$`, "m"))?.[1];
    const [id, token] = [field("agent_id"), field("token")];
    if (!id || !token) throw new Error(`agents add printed no agent_id/token:\n${out}`);
    return { id, token };
  }

  /** Revokes an agent's API token (`agents revoke`). */
  async revokeAgent(id) {
    await this.cli(["agents", "revoke", ...this.storeArgs, id]);
  }

  cleanup() {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/**
 * An HS256 JWT for an agent, as a site's CRM would mint it: claims `sub`,
 * `name`, `site` and `exp` (seconds since the epoch; default one hour ahead),
 * signed with the site's secret.
 */
export function agentJwt({ sub = "crm-agent-7", name = "Robin", site = "demo", exp, secret = TEST_SITE_SECRET } = {}) {
  const claims = { sub, name, site, exp: exp ?? Math.floor(Date.now() / 1000) + 3600 };
  const unsigned = `${b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${b64url(JSON.stringify(claims))}`;
  const signature = createHmac("sha256", secret).update(unsigned).digest("base64url");
  return `${unsigned}.${signature}`;
}

/**
 * A visitor identity as a site's server signs it for `identify()`, made by
 * the documented server-side example (examples/identity/mint-identity.mjs),
 * so the example is what the tests exercise.
 */
export function signedIdentity({ userId = "u-42", name = "Robin Customer", email = "robin@example.com", customData, lifetimeSecs = 3600, secret = TEST_SITE_SECRET } = {}) {
  return mintIdentity({ userId, name, email, customData }, secret, lifetimeSecs);
}
