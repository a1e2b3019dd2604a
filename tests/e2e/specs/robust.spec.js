// The widget never throws into the host page: whatever the broker answers
// (or does not), whatever the page does to the widget's nodes, the page's
// `window.onerror`, its `unhandledrejection` listeners and Playwright's
// `pageerror` see nothing from us, and the visitor is told what happened
// and offered "Try again". The broker is garbage.js (a real server that
// answers badly on purpose) or, for a broker going away mid-session, the
// real one.
import { test as base, expect, widget, codeResponse } from "../fixtures.js";
import { Garbage } from "../garbage.js";

const test = base.extend({
  garbage: async ({}, use) => {
    const garbage = await Garbage.start();
    await use(garbage);
    await garbage.close();
  },
});

const NETWORK = "We couldn't reach our support service. Check your connection and try again.";
const SERVER = "Something went wrong on our side. Please try again in a moment.";

// What the page's own handlers catch, installed before any script runs.
test.beforeEach(async ({ page }) => {
  await page.addInitScript(() => {
    const caught = (window.__caught = []);
    window.onerror = (message) => {
      caught.push(`onerror: ${message}`);
    };
    window.addEventListener("unhandledrejection", (e) => {
      caught.push(`unhandledrejection: ${e.reason && e.reason.stack ? e.reason.stack : e.reason}`);
    });
  });
});

/** Neither the page's handlers nor Playwright saw an uncaught error. */
async function nothingThrown(page) {
  expect(await page.evaluate(() => window.__caught), "the page's onerror / unhandledrejection").toEqual([]);
  expect(page.errors, "pageerror").toEqual([]);
}

/** The host page, with its widget pointed at the garbage broker. */
async function openPage(page, garbage) {
  await page.goto(garbage.pageUrl);
  await page.evaluate(() => window.widgetReady);
  const w = widget(page);
  await expect(w.link).toBeVisible();
  return {
    ...w,
    retry: w.dialog.getByRole("button", { name: "Try again" }),
    message: w.dialog.locator(".message"),
  };
}

// Each bad answer to POST /v1/codes, and what the visitor is told.
const FAULTS = [
  ["malformed", "malformed JSON with 201 Created", SERVER],
  ["letters", 'a code that is not six digits ("12ab56")', SERVER],
  ["missing", "a code without its session, token and expiry", SERVER],
  ["strings", "numbers sent as strings", SERVER],
  ["huge", "a megabyte-long code and session id", SERVER],
  ["endless", "a code said to live for 136 years", SERVER],
  ["array", "an array instead of an object", SERVER],
  ["null", "JSON null", SERVER],
  ["unknown-error", "an error code this widget does not know, with a huge message", SERVER],
  ["html", "an HTML page with 200 OK", SERVER],
  ["error-page", "a 500 with an HTML body", SERVER],
  ["empty", "an empty 204", SERVER],
  ["cut", "a connection cut in the middle of the body", SERVER],
];

for (const [answer, what, message] of FAULTS) {
  test(`broker answers ${what}: the modal says so with Try again, the page sees no error`, async ({ page, garbage }) => {
    garbage.answers.codes = answer;
    const w = await openPage(page, garbage);
    await w.link.click();
    await expect(w.message).toHaveText(message);
    await expect(w.retry).toBeFocused();
    await expect(w.code).toHaveCount(0);
    // The page really asked this server, across origins, preflight first.
    expect(garbage.requests).toContain("OPTIONS /v1/codes");
    expect(garbage.requests).toContain("POST /v1/codes");

    // Try again asks again, and the same garbage gets the same answer.
    await w.retry.click();
    await garbage.waitFor("POST /v1/codes", 2);
    await expect(w.message).toHaveText(message);
    await expect(w.retry).toBeFocused();
    await nothingThrown(page);
  });
}

test("broker never answers: after the time limit the modal says it could not reach us, with Try again", async ({ page, garbage }) => {
  // The widget's limit is 10 s (TIME_LIMIT_MS in crates/web/src/http.rs),
  // not configurable from the page: this test waits for it.
  test.setTimeout(45_000);
  garbage.answers.codes = "silent";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
  await expect(w.message).toHaveText(NETWORK, { timeout: 20_000 });
  await expect(w.retry).toBeFocused();
  await nothingThrown(page);
});

test("a good code, then garbage on every session route: the code stays shown, Cancel still closes", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(w.code.locator("span[aria-hidden=true]")).toHaveText(["123", "456"]);
  // The event stream's garbage events came and went, and the browser
  // reconnected the stream after it ended.
  const session = "/v1/sessions/0123456789abcdef0123456789abcdef";
  await garbage.waitFor(`GET ${session}/events`, 2);
  // Then the stream answers HTML, which makes the browser give up on it;
  // the widget asks for a new ticket, and gets HTML too.
  garbage.answers.events = "html";
  await garbage.waitFor(`POST ${session}/ticket`);
  await expect(w.code).toBeVisible();
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await garbage.waitFor(`POST ${session}/cancel`);
  await expect(w.link).toBeFocused();
  await nothingThrown(page);
});

test("Try again after a bad answer gets a code once the broker answers well", async ({ page, garbage }) => {
  garbage.answers.codes = "letters";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(w.message).toHaveText(SERVER);
  garbage.answers.codes = "good";
  await w.retry.click();
  await expect(w.code.locator("span[aria-hidden=true]")).toHaveText(["123", "456"]);
  await nothingThrown(page);
});

test("a page focus listener that calls the widget while the widget moves focus does not break it", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  const help = page.getByRole("button", { name: "Get a support code" });
  // A site that wires its analytics up on first use: each focus change
  // registers (once) a listener for new codes. Opening the modal from the
  // site's own button moves focus from the page into the dialog inside the
  // widget's update, so this listener calls the widget while it is
  // mid-update.
  await page.evaluate(() => {
    window.__codes = [];
    const onCode = (detail) => window.__codes.push(detail.code);
    document.addEventListener("focusin", () => window.widget.on("code.created", onCode));
  });
  for (let i = 0; i < 2; i++) {
    await help.click();
    await expect(w.code).toBeVisible();
    await expect(w.close).toBeFocused();
    await w.cancel.click();
    await expect(w.dialog).toBeHidden();
  }
  // The widget still works, and the listener the page added is called.
  await help.click();
  await expect(w.code).toBeVisible();
  await expect.poll(() => page.evaluate(() => window.__codes)).toContain("123456");
  await nothingThrown(page);
});

test("a page focus listener that puts the link back on every focus change, before and after the rest of the widget arrives", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  const help = page.getByRole("button", { name: "Get a support code" });
  // A site guarding against its own re-renders. The first click is
  // answered by the boot module (its modal takes focus from the page's
  // button), the second by the widget module.
  await page.evaluate(() => {
    window.__focus = 0;
    document.addEventListener("focusin", () => {
      window.__focus++;
      window.widget.mountFooterLink();
    });
  });
  for (let i = 0; i < 2; i++) {
    await help.click();
    await expect(w.code).toBeVisible();
    await expect(w.close).toBeFocused();
    await w.cancel.click();
    await expect(w.dialog).toBeHidden();
  }
  // Putting the link where it already is moves nothing, so it did not
  // reopen the modal (and move focus again) over and over.
  expect(await page.evaluate(() => window.__focus)).toBeLessThan(20);
  await expect(page.locator("footer [data-agent-assist] agent-assist-widget")).toHaveCount(1);
  await nothingThrown(page);
});

test("the page re-renders its footer while idle: the link moves into the new footer and works", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  await page.evaluate(() => {
    const footer = document.createElement("footer");
    footer.innerHTML = "<p>© A shop, re-rendered</p><div data-agent-assist></div>";
    document.querySelector("footer").replaceWith(footer);
  });
  await expect(page.locator("footer [data-agent-assist] agent-assist-widget")).toHaveCount(1);
  await expect(page.locator("footer")).toContainText("re-rendered");
  await w.link.click();
  await expect(w.code).toBeVisible();
  await nothingThrown(page);
});

test("the page removes the widget's node itself: the link stays removed, open() and mountFooterLink() still work", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  await page.evaluate(() => document.querySelector("agent-assist-widget").remove());
  await expect(w.link).toHaveCount(0);
  // The site's own button can still open the modal; the link stays away.
  const help = page.getByRole("button", { name: "Get a support code" });
  await help.click();
  await expect(w.code).toBeVisible();
  await expect(w.link).toHaveCount(0);
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await expect(help).toBeFocused();
  await page.evaluate(() => window.widget.mountFooterLink());
  await expect(page.locator("footer [data-agent-assist] agent-assist-widget")).toHaveCount(1);
  await w.link.click();
  await expect(w.code).toBeVisible();
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  // The same once the rest of the widget is here (it answered that click).
  await page.evaluate(() => document.querySelector("agent-assist-widget").remove());
  await help.click();
  await expect(w.code).toBeVisible();
  await expect(w.link).toHaveCount(0);
  await w.cancel.click();
  await expect(help).toBeFocused();
  await nothingThrown(page);
});

test("the page re-renders its footer while the code is loading: the code arrives in a modal that is shown", async ({ page, garbage }) => {
  garbage.answers.codes = "held";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
  await garbage.waitFor("POST /v1/codes");
  await page.evaluate(() => {
    const footer = document.createElement("footer");
    footer.innerHTML = "<div data-agent-assist></div>";
    document.querySelector("footer").replaceWith(footer);
  });
  garbage.release("good");
  await expect(w.code).toBeVisible();
  await expect(w.dialog).toBeVisible();
  await expect(page.locator("footer [data-agent-assist] agent-assist-widget")).toHaveCount(1);
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await nothingThrown(page);
});

test("the page removes the widget's node while the code is loading: nothing throws, mountFooterLink() brings the code back", async ({ page, garbage }) => {
  garbage.answers.codes = "held";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
  await garbage.waitFor("POST /v1/codes");
  await page.evaluate(() => document.querySelector("agent-assist-widget").remove());
  garbage.release("good");
  // The answer came to a widget out of the page; it went nowhere visible.
  await expect.poll(() => page.evaluate(() => window.widget.createSessionCode().then((c) => c.code))).toBe("123456");
  await expect(w.dialog).toHaveCount(0);
  // Put back, the widget shows what was open: the modal, now with the code.
  await page.evaluate(() => window.widget.mountFooterLink());
  await expect(w.dialog).toBeVisible();
  await expect(w.code.locator("span[aria-hidden=true]")).toHaveText(["123", "456"]);
  await w.cancel.click();
  await expect(w.link).toBeFocused();
  await nothingThrown(page);
});

test("the page removes the modal while the code is shown: nothing throws, the link opens it again", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(w.code).toBeVisible();
  await page.evaluate(() => document.querySelector("agent-assist-widget").shadowRoot.querySelector("dialog").remove());
  await expect(w.dialog).toHaveCount(0);
  await w.link.click();
  await expect(w.dialog).toBeVisible();
  await expect(w.code.locator("span[aria-hidden=true]")).toHaveText(["123", "456"]);
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await nothingThrown(page);
});

test("the page removes the footer link while the code is shown: nothing throws, mountFooterLink() brings both back", async ({ page, garbage }) => {
  garbage.answers.codes = "good";
  const w = await openPage(page, garbage);
  await w.link.click();
  await expect(w.code).toBeVisible();
  await page.evaluate(() => document.querySelector("agent-assist-widget").shadowRoot.querySelector("button.link").remove());
  await page.evaluate(() => document.querySelector("agent-assist-widget").remove());
  await expect(w.dialog).toHaveCount(0);
  await page.evaluate(() => window.widget.mountFooterLink());
  await expect(w.dialog).toBeVisible();
  await expect(w.code).toBeVisible();
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await expect(w.link).toBeFocused();
  await nothingThrown(page);
});

test("the broker goes down while the code is shown: nothing throws; Cancel closes, the next code says it could not reach us, Try again works once it is back", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  const proc = broker.proc;
  const streamLost = page.waitForEvent("requestfailed", (r) => r.url().includes("/events"));
  await new Promise((resolve) => {
    proc.once("exit", resolve);
    proc.kill("SIGKILL");
  });
  await streamLost;
  await expect(w.code).toBeVisible();
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await w.link.click();
  const retry = w.dialog.getByRole("button", { name: "Try again" });
  await expect(w.dialog.locator(".message")).toHaveText(NETWORK);
  await expect(retry).toBeFocused();
  await broker.spawn();
  await codeResponse(page, () => retry.click());
  await expect(w.code).toBeVisible();
  await nothingThrown(page);
});
