// A broker that answers badly, on purpose: two real HTTP servers on free
// loopback ports. One serves the host page and the SDK (pkg/dist) as a site
// would; the other, on another origin, stands in for the broker and answers
// the widget's routes (with CORS for the page's origin, preflight included)
// the way the test chose: malformed JSON, the wrong shape, HTML, an error
// page, nothing at all, a connection cut halfway. Nothing in the browser is
// mocked: the page really fetches from it.
import { EventEmitter } from "node:events";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { ROOT, freePort } from "./broker.js";

const TYPES = { ".js": "text/javascript", ".wasm": "application/wasm", ".html": "text/html" };

/** A code answer of the protocol's shape, to start faults from. */
export function goodCode(overrides = {}) {
  return {
    code: "123456",
    session_id: "0123456789abcdef0123456789abcdef",
    expires_at: Date.now() + 1_200_000,
    expires_in: 1200,
    device_token: "ab".repeat(32),
    stream_ticket: "cd".repeat(16),
    ...overrides,
  };
}

const HTML = "<!doctype html><html><head><title>Oops</title></head><body><h1>Welcome to nginx!</h1></body></html>";

/**
 * How the fake broker answers, by name. Each is `(req, res, server)`;
 * `server.pending` holds answers that never come, so `close()` can end them.
 */
export const ANSWERS = {
  // JSON cut short, with the status of a success.
  malformed: (req, res) => send(res, 201, "application/json", '{"code": "123456", "session_id": '),
  // Valid JSON, not the protocol's shape.
  letters: (req, res) => json(res, 201, goodCode({ code: "12ab56" })),
  missing: (req, res) => json(res, 201, { code: "123456" }),
  strings: (req, res) => json(res, 201, goodCode({ expires_in: "1200", expires_at: String(Date.now()) })),
  huge: (req, res) => json(res, 201, goodCode({ code: "9".repeat(1_000_000), session_id: "f".repeat(1_000_000) })),
  endless: (req, res) => json(res, 201, goodCode({ expires_in: 4_294_967_295 })),
  array: (req, res) => json(res, 201, [goodCode()]),
  null: (req, res) => json(res, 201, null),
  // An error in the protocol's envelope, with a code this widget never heard of.
  "unknown-error": (req, res) => json(res, 400, { error: "brand_new_code", message: "x".repeat(100_000) }),
  // A front end's page instead of the API.
  html: (req, res) => send(res, 200, "text/html", HTML),
  "error-page": (req, res) => send(res, 500, "text/html", HTML.replace("Welcome to nginx!", "500 Internal Server Error")),
  empty: (req, res) => send(res, 204, null, ""),
  // Headers and the start of the body, then the connection is cut.
  cut: (req, res) => {
    res.writeHead(201, { "content-type": "application/json", "content-length": "4096" });
    res.write('{"code": "123456", "session_', () => res.socket.destroy());
  },
  // The request is read and never answered.
  silent: (req, res, server) => {
    server.pending.add(res);
    res.on("close", () => server.pending.delete(res));
  },
  // Held until the test calls `release(name)`, which answers it as `name`.
  held: (req, res, server) => {
    server.held.push([req, res]);
  },
  // A proper code, so the routes after it are reached.
  good: (req, res) => json(res, 201, goodCode()),
  // An event stream whose events are not the protocol's.
  "garbage-stream": (req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
    res.write("event: session\ndata: {not json\n\n");
    res.write('event: session\nid: 1\ndata: {"session_id": 7, "state": "exploded"}\n\n');
    res.write('event: session\nid: 2\ndata: ["pending"]\n\n');
    res.write("event: session\ndata: " + "z".repeat(200_000) + "\n\n");
    res.end();
  },
};

function send(res, status, type, body) {
  const headers = type ? { "content-type": type } : {};
  res.writeHead(status, headers);
  res.end(body);
}

function json(res, status, value) {
  send(res, status, "application/json", JSON.stringify(value));
}

/** Which route of the widget's a request is. */
function route(req) {
  const { pathname } = new URL(req.url, "http://x");
  if (pathname === "/v1/codes") return "codes";
  if (/^\/v1\/sessions\/[^/]+\/events$/.test(pathname)) return "events";
  if (pathname.startsWith("/v1/sessions/")) return "sessions";
  return null;
}

export class Garbage extends EventEmitter {
  constructor() {
    super();
    /** How each route answers: a name from `ANSWERS`. Tests set these. */
    this.answers = { codes: "malformed", sessions: "html", events: "garbage-stream" };
    /** `METHOD /path` of every API request received, preflights included. */
    this.requests = [];
    this.pending = new Set();
    this.held = [];
    this.sockets = new Set();
  }

  static async start() {
    const g = new Garbage();
    const [sitePort, apiPort] = [await freePort(), await freePort()];
    g.siteUrl = `http://127.0.0.1:${sitePort}`;
    g.url = `http://127.0.0.1:${apiPort}`;
    g.site = await listen(sitePort, (req, res) => g.serveSite(req, res), g.sockets);
    g.api = await listen(apiPort, (req, res) => g.serveApi(req, res), g.sockets);
    return g;
  }

  /** The host page, pointed at this broker (see `serveSite`). */
  get pageUrl() {
    return `${this.siteUrl}/?broker=${encodeURIComponent(this.url)}`;
  }

  /**
   * Resolves once `n` requests starting with `prefix` (e.g. "POST
   * /v1/codes") were read, and their answer (if any) begun.
   */
  async waitFor(prefix, n = 1) {
    while (this.requests.filter((r) => r.startsWith(prefix)).length < n) {
      await new Promise((resolve) => this.once("request", resolve));
    }
  }

  /** Answers the requests held so far (see `held`) as `name`. */
  release(name) {
    for (const [req, res] of this.held.splice(0)) ANSWERS[name](req, res, this);
  }

  serveApi(req, res) {
    // Read the body first, as a server does, then answer.
    req.resume();
    req.on("end", () => {
      this.answer(req, res);
      this.requests.push(`${req.method} ${req.url}`);
      this.emit("request");
    });
  }

  answer(req, res) {
    // The page's origin only, as the real broker does for an allowed origin.
    res.setHeader("access-control-allow-origin", this.siteUrl);
    res.setHeader("vary", "origin");
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "content-type, authorization",
        "access-control-max-age": "0",
      });
      return res.end();
    }
    const which = route(req);
    if (!which) return send(res, 404, "text/plain", "not here");
    ANSWERS[this.answers[which]](req, res, this);
  }

  // The host page: a footer with the site's marked spot, the SDK's script
  // tag without a site key (so nothing mounts by itself), and `page.js`
  // which makes the widget with `broker` from the query and mounts its link.
  async serveSite(req, res) {
    const { pathname } = new URL(req.url, "http://x");
    if (pathname === "/") return send(res, 200, "text/html", PAGE);
    if (pathname === "/page.js") return send(res, 200, "text/javascript", PAGE_JS);
    if (pathname.startsWith("/sdk/") && !pathname.includes("..")) {
      const file = path.join(ROOT, "pkg/dist", pathname.slice("/sdk/".length));
      try {
        const body = await readFile(file);
        return send(res, 200, TYPES[path.extname(file)] || "application/octet-stream", body);
      } catch {
        return send(res, 404, "text/plain", "no such file");
      }
    }
    send(res, 404, "text/plain", "no such page");
  }

  close() {
    for (const res of this.pending) res.destroy();
    for (const [, res] of this.held) res.destroy();
    for (const socket of this.sockets) socket.destroy();
    return Promise.all([this.site, this.api].map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

function listen(port, handler, sockets) {
  const server = createServer(handler);
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <link rel="icon" href="data:,">
  <title>A shop</title>
</head>
<body>
  <main><h1>A shop</h1><button type="button" id="help">Get a support code</button></main>
  <footer><p>© A shop</p><div data-agent-assist></div></footer>
  <script src="/sdk/agent-assist.js"></script>
  <script src="/page.js"></script>
</body>
</html>
`;

const PAGE_JS = `
var broker = new URLSearchParams(location.search).get("broker");
window.widgetReady = AgentAssist.init({ siteKey: "demo", broker: broker }).then(function (w) {
  window.widget = w;
  w.mountFooterLink();
  return w;
});
// The site's own button, as on a support page.
document.getElementById("help").addEventListener("click", function () {
  window.widgetReady.then(function (w) { w.open(); });
});
`;
