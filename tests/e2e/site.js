// A customer's web site for the tests and the bench: a plain HTTP server on
// its own loopback port (so its own origin, not the broker's) serving fixed
// pages, with the widget's script tag pointing at the broker, as a site
// owner embeds it. Nothing is mocked: the browser fetches the page from
// here and the SDK from the broker.
import { createServer } from "node:http";

/**
 * Serves `files` (path → { type, body, hold? }) until `close()`; any other
 * path is a 404. Resolves once listening, with `url` (the site's origin).
 */
export function startSite(files) {
  const server = createServer((req, res) => {
    const file = files[new URL(req.url, "http://site").pathname];
    if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    // A file with `hold` (a promise) is answered once it settles: a page
    // whose `load` event waits on it.
    Promise.resolve(file.hold).then(() => {
      res.writeHead(200, { "content-type": file.type, "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : file.body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      resolve({ url, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

/** A page of a site with `head` and `body` (an HTML document). */
export const page = (body, head = "") => ({
  type: "text/html; charset=utf-8",
  body: `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>A customer's site</title><link rel="icon" href="data:,">${head}</head>
<body>
${body}
</body>
</html>`,
});
