// The two-part widget: the page loads only the boot module (config check,
// footer link); the rest arrives on demand and takes over what the boot
// module drew without the visitor noticing. Real broker, real pages.
import { test, expect, widget, codeResponse, whileStalled, booted } from "../fixtures.js";
import { Broker } from "../broker.js";
import { startSite, page as sitePage } from "../site.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");
/** The screenshots' pages: light, dark and narrow. */
const VARIANTS = {
  light: { viewport: { width: 1280, height: 800 } },
  dark: { viewport: { width: 1280, height: 800 }, colorScheme: "dark" },
  "320px": { viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true },
};

/** Paths under /sdk/ the page has fetched, in order. */
function sdkRequests(page) {
  const seen = [];
  page.on("request", (r) => {
    const p = new URL(r.url()).pathname;
    if (p.startsWith("/sdk/")) seen.push(p);
  });
  return seen;
}

test("page load: the script draws the link itself, before any wasm; the boot module comes once the page is idle and takes that same link over; the pointer over it fetches the rest", async ({ page, broker }) => {
  const seen = sdkRequests(page);
  // What the page had fetched from /sdk/ when its DOMContentLoaded fired
  // (after the deferred script ran), and whether the link was there.
  let atParsed = null;
  await page.exposeFunction("__parsed", (link) => (atParsed = { link, seen: [...seen] }));
  await page.addInitScript(() =>
    document.addEventListener("DOMContentLoaded", () => {
      const button = document.querySelector("agent-assist-widget")?.shadowRoot?.querySelector("button.link");
      window.__parsed(button?.textContent ?? null);
    }),
  );
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  await expect.poll(() => atParsed).not.toBeNull();
  expect(atParsed).toEqual({ link: "Agent Assist", seen: ["/sdk/agent-assist.js"] });
  await w.link.evaluate((b) => (b.dataset.seen = "early"));

  await booted(page);
  await page.waitForLoadState("networkidle");
  expect(seen).toEqual(["/sdk/agent-assist.js", "/sdk/agent-assist_bg.wasm"]);
  // The boot module took the same element over, in the same place, and
  // dressed it from the checked config.
  expect(await w.link.evaluate((b) => b.dataset.seen)).toBe("early");
  await expect(page.locator("agent-assist-widget")).toHaveCount(1);
  await expect(page.locator("footer agent-assist-widget")).toHaveAttribute("lang", "en");

  const arrived = page.waitForRequest((r) => r.url().endsWith("/sdk/widget/agent_assist_widget_bg.wasm"));
  await w.link.hover();
  await arrived;
  expect(seen).toContain("/sdk/widget/agent_assist_widget.js");
  // Hovering asks the broker for nothing.
  await page.waitForLoadState("networkidle");
  expect(seen.every((p) => !p.startsWith("/v1/"))).toBe(true);

  const { status } = await codeResponse(page, () => w.link.click());
  expect(status).toBe(201);
  await expect(w.code).toBeVisible();
});

/**
 * A customer's site (its own origin) whose page's `load` event waits for
 * `hold` (an image it holds back); the page's script tag points at the
 * broker `startBroker(siteUrl)` resolves to.
 */
async function heldSite(hold, startBroker, attrs = "") {
  const files = { "/held.png": { type: "image/png", body: Buffer.alloc(0), hold } };
  const site = await startSite(files);
  const broker = await startBroker(site.url);
  files["/"] = sitePage(`<h1>Lumen Home</h1><img src="/held.png" alt="">
<footer><p>© Lumen Home</p></footer>
<script src="${broker.url}/sdk/agent-assist.js" data-site-key="demo" ${attrs} defer></script>`, '<meta name="color-scheme" content="light dark"><meta name="viewport" content="width=device-width, initial-scale=1">');
  return { site, broker };
}

test("a click on the link before the boot module is here (the page still loading) fetches it at once, and the modal opens with the code", async ({ page }) => {
  let release;
  const hold = new Promise((r) => (release = r));
  const { site, broker } = await heldSite(hold, (origin) => Broker.start({ origins: [origin] }));
  try {
    const seen = sdkRequests(page);
    await page.goto(site.url + "/", { waitUntil: "commit" });
    const w = widget(page);
    await expect(w.link).toBeVisible();
    // Nothing but the script: the page has not loaded, so the boot module waits.
    expect(seen).toEqual(["/sdk/agent-assist.js"]);
    expect(await page.evaluate(() => document.readyState)).not.toBe("complete");

    const { status, body } = await codeResponse(page, () => w.link.click());
    expect(status).toBe(201);
    await expect(w.dialog).toBeVisible();
    await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
    await expect(w.close).toBeFocused();
    // The click fetched the boot module and, beside it, the widget module.
    expect(seen).toEqual(expect.arrayContaining(["/sdk/agent-assist_bg.wasm", "/sdk/widget/agent_assist_widget_bg.wasm"]));
    expect(await page.evaluate(() => document.readyState)).not.toBe("complete");
    await expect(page.locator("agent-assist-widget")).toHaveCount(1);
    await expect(w.link).not.toHaveAttribute("aria-busy");

    await w.cancel.click();
    await expect(w.dialog).toBeHidden();
    await expect(w.link).toBeFocused();
  } finally {
    release();
    await broker.stop();
    broker.cleanup();
    await site.close();
  }
});

test("screenshots of the early link and the same link once the boot module has it: light, dark, 320 px; nothing moves", async ({ browser }) => {
  for (const [name, options] of Object.entries(VARIANTS)) {
    let release;
    const hold = new Promise((r) => (release = r));
    const { site, broker } = await heldSite(hold, (origin) => Broker.start({ origins: [origin] }), 'data-theme="auto"');
    const context = await browser.newContext(options);
    try {
      const page = await context.newPage();
      await page.goto(site.url + "/", { waitUntil: "commit" });
      const w = widget(page);
      await expect(w.link).toBeVisible();
      const footer = page.locator("footer");
      const before = await w.link.boundingBox();
      const style = () => w.link.evaluate((b) => ["color", "text-decoration-line", "font-size", "cursor"].map((k) => getComputedStyle(b)[k]));
      const styleBefore = await style();
      const box = await footer.boundingBox();
      const clip = { x: 0, y: Math.max(0, box.y - 8), width: options.viewport.width, height: box.height + 16 };
      await page.screenshot({ path: path.join(SHOTS, `link-early-${name}.png`), clip });
      release();
      await booted(page);
      expect(await w.link.boundingBox()).toEqual(before);
      expect(await style()).toEqual(styleBefore);
      await page.screenshot({ path: path.join(SHOTS, `link-booted-${name}.png`), clip });
    } finally {
      release();
      await context.close();
      await broker.stop();
      broker.cleanup();
      await site.close();
    }
  }
});

test("a script tag with a bad attribute: its early link goes once the boot module has checked the config, and the console names the field", async ({ page, broker }) => {
  const logged = [];
  page.on("console", (m) => m.type() === "error" && logged.push(m.text()));
  let release;
  const hold = new Promise((r) => (release = r));
  const { site } = await heldSite(hold, async () => broker, 'data-theme="purple"');
  try {
    await page.goto(site.url + "/", { waitUntil: "commit" });
    const w = widget(page);
    // Drawn at once, before anything was checked…
    await expect(w.link).toBeVisible();
    release();
    // …and gone once the page has loaded and the boot module said no.
    expect(await page.evaluate(() => window.AgentAssist.ready)).toBeNull();
    await expect(page.locator("agent-assist-widget")).toHaveCount(0);
    expect(logged.some((t) => t.includes("Agent Assist could not start") && t.includes("`theme`"))).toBe(true);
  } finally {
    release();
    await site.close();
  }
});

test("the click is answered at once: the modal opens while the rest of the widget is still on its way, and the code arrives in that same dialog", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  await booted(page);
  // A stalled server (not a mocked one): nothing it serves arrives.
  await whileStalled(broker, async () => {
    await w.link.click();
    await expect(w.dialog).toBeVisible();
    await expect(w.dialog.getByRole("heading", { name: "Share your screen with support" })).toBeVisible();
    await expect(w.dialog.getByRole("listitem")).toHaveCount(5);
    await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
    await expect(page.getByRole("status")).toHaveText("Getting your code…");
    await expect(w.close).toBeFocused();
    await w.dialog.evaluate((d) => (d.dataset.seen = "before"));
  });
  await expect(w.code).toBeVisible();
  // The widget module took the open dialog over rather than drawing another.
  await expect(page.locator("agent-assist-widget dialog")).toHaveCount(1);
  expect(await w.dialog.evaluate((d) => d.dataset.seen)).toBe("before");
  // And it is the widget module's now: Cancel withdraws the code and
  // returns focus to the same link.
  await w.link.evaluate((b) => (b.dataset.seen = "link"));
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await expect(w.link).toBeFocused();
  expect(await w.link.evaluate((b) => b.dataset.seen)).toBe("link");
});

test("the rest of the widget cannot be fetched: the modal says so, the page's listener hears it, and Try again works once the service is back", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  await page.evaluate(async () => {
    const w = await window.AgentAssist.ready;
    window.__events = [];
    // Registered before the widget module is here.
    w.on("error", (e) => window.__events.push(["error", e.code]));
    w.on("code.created", (e) => window.__events.push(["code.created", e.code]));
  });
  const w = widget(page);
  await broker.stop();
  await w.link.click();
  await expect(w.dialog.getByRole("paragraph").filter({ hasText: "We couldn't reach our support service." })).toBeVisible();
  const retry = w.dialog.getByRole("button", { name: "Try again" });
  await expect(retry).toBeFocused();
  await expect(page.getByRole("status")).toContainText("couldn't reach");
  expect(await page.evaluate(() => window.__events)).toEqual([["error", "network"]]);

  await broker.spawn();
  const { body } = await codeResponse(page, () => retry.click());
  await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
  // The listeners went over to the widget module.
  expect(await page.evaluate(() => window.__events)).toEqual([
    ["error", "network"],
    ["code.created", body.code],
  ]);
});

test("Cancel before the rest of the widget arrives closes the modal and no code is asked for", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  await booted(page);
  const posts = [];
  page.on("request", (r) => r.method() === "POST" && posts.push(new URL(r.url()).pathname));
  await whileStalled(broker, async () => {
    await w.link.click();
    await expect(w.dialog).toBeVisible();
    await page.keyboard.press("Escape");
    await expect(w.dialog).toBeHidden();
    await expect(w.link).toBeFocused();
  });
  // The widget module arrives (the pointer is still over the link) and stays quiet.
  await page.waitForResponse((r) => r.url().endsWith("/sdk/widget/agent_assist_widget_bg.wasm"));
  await page.waitForLoadState("networkidle");
  await expect(w.dialog).toBeHidden();
  expect(posts).toEqual([]);
});

test("keyboard: focus on the link fetches the rest; Enter opens the modal with the code", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  const arrived = page.waitForRequest((r) => r.url().endsWith("/sdk/widget/agent_assist_widget_bg.wasm"));
  await w.link.focus();
  await arrived;
  const { status } = await codeResponse(page, () => page.keyboard.press("Enter"));
  expect(status).toBe(201);
  await expect(w.code).toBeVisible();
  await expect(w.close).toBeFocused();
});

test("identify() before the rest arrives: a bad identity is reported on the console and as an error event, and no code carries it", async ({ page, broker }) => {
  const logged = [];
  page.on("console", (m) => m.type() === "error" && logged.push(m.text()));
  await page.goto(broker.url + "/support.html");
  await page.evaluate(async () => {
    const w = await window.AgentAssist.init({ siteKey: "demo" });
    window.__events = [];
    w.on("error", (e) => window.__events.push(e.code));
    // `email` is not an email address.
    w.identify({ userId: "u-1", email: "not-an-address", token: "x" });
    window.__w = w;
  });
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url().endsWith("/v1/codes") && r.method() === "POST"),
    page.evaluate(() => window.__w.createSessionCode()),
  ]);
  expect(request.postDataJSON().identity ?? null).toBeNull();
  expect((await request.response()).status()).toBe(201);
  expect(await page.evaluate(() => window.__events)).toEqual(["invalid_argument"]);
  expect(logged.some((t) => t.includes("identify()") && t.includes("`email` is not an email address"))).toBe(true);
});

test("screenshots of the boot module's modal: waiting and unreachable, light, dark, 320 px", async ({ browser, broker }) => {
  for (const [name, options] of Object.entries(VARIANTS)) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    await page.goto(broker.url + "/");
    const w = widget(page);
    await expect(w.link).toBeVisible();
    await booted(page);
    await whileStalled(broker, async () => {
      await w.link.click();
      await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
      await page.screenshot({ path: path.join(SHOTS, `boot-waiting-${name}.png`), animations: "disabled" });
    });
    await expect(w.code).toBeVisible();
    await context.close();
    // A fresh context (nothing cached), service down: the boot module's own error.
    const fresh = await browser.newContext(options);
    const other = await fresh.newPage();
    await other.goto(broker.url + "/");
    const v = widget(other);
    await expect(v.link).toBeVisible();
    await booted(other);
    await broker.stop();
    await v.link.click();
    await expect(v.dialog.getByRole("button", { name: "Try again" })).toBeFocused();
    await other.screenshot({ path: path.join(SHOTS, `boot-unreachable-${name}.png`), animations: "disabled" });
    await broker.spawn();
    await fresh.close();
  }
});
