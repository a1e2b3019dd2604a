// Two broker replicas on one Redis behind a round-robin proxy, for the
// scale-out scenario (specs/replicas.spec.js): the browser talks to the
// proxy only, and every request, event stream and WebSocket goes to the
// next replica in turn, so both really serve the same visitor and agent.
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { Broker, freePort } from "./broker.js";

/** A `redis-server` of the test's own on a free port, nothing on disk. */
export async function startRedis() {
  const port = await freePort();
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const exited = new Promise((_, reject) =>
    proc.once("exit", (code) => reject(new Error(`redis-server exited (${code}); \`cargo xtask test\` installs it:\n${log}`))),
  );
  const ready = (async () => {
    for (;;) {
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await Promise.race([ready, exited]);
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.removeAllListeners("exit");
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  };
}

function ping(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("PING\r\n"));
    s.once("data", (d) => {
      s.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
    s.once("error", () => resolve(false));
  });
}

/**
 * An HTTP proxy on `port` (default: a free one) that sends each request
 * (and each WebSocket upgrade) to the next of `ports` in turn. `served[i]`
 * counts what went to `ports[i]`, by kind.
 */
export async function roundRobin(ports, { port } = {}) {
  let next = 0;
  const served = ports.map(() => ({ requests: 0, api: 0, streams: 0, sockets: 0 }));
  const pick = () => next++ % ports.length;
  const server = http.createServer((req, res) => {
    const i = pick();
    served[i].requests++;
    if (req.url.startsWith("/v1/")) served[i].api++;
    if (req.url.includes("/events")) served[i].streams++;
    const up = http.request({ host: "127.0.0.1", port: ports[i], method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    // A client that goes (a closed event stream) closes the upstream too.
    res.on("close", () => up.destroy());
    req.pipe(up);
  });
  server.on("upgrade", (req, socket, head) => {
    const i = pick();
    served[i].sockets++;
    const up = net.connect(ports[i], "127.0.0.1", () => {
      let lines = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let h = 0; h < req.rawHeaders.length; h += 2) lines += `${req.rawHeaders[h]}: ${req.rawHeaders[h + 1]}\r\n`;
      up.write(lines + "\r\n");
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
    socket.on("close", () => up.destroy());
  });
  const sockets = new Set();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  const listenPort = port ?? (await freePort());
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenPort, "127.0.0.1", resolve);
  });
  return {
    port: listenPort,
    url: `http://127.0.0.1:${listenPort}`,
    served,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Redis, two replicas on it, and the proxy in front: `{ redis, replicas,
 * proxy, url }`. The replicas' sites allow the proxy's origin, which is
 * the one the browser sees.
 */
export async function startReplicas() {
  const redis = await startRedis();
  const proxyPort = await freePort();
  const origins = [`http://127.0.0.1:${proxyPort}`];
  const replicas = [await Broker.start({ store: redis.url, origins }), await Broker.start({ store: redis.url, origins })];
  const proxy = await roundRobin(
    replicas.map((b) => b.port),
    { port: proxyPort },
  );
  return {
    redis,
    replicas,
    proxy,
    url: proxy.url,
    stop: async () => {
      await proxy.close();
      for (const b of replicas) {
        await b.stop();
        b.cleanup();
      }
      await redis.stop();
    },
  };
}
