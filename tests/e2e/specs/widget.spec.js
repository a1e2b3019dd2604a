// The support-code widget end to end: real broker, real pages, real Chromium.
import { test, expect, widget, codeResponse, booted } from "../fixtures.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");


const mmss = (t) => {
  const [m, s] = t.split(":").map(Number);
  return m * 60 + s;
};

test("page load makes no broker request, no storage write and starts no timer", async ({ page, broker }) => {
  // Count what the page does, from before any script runs.
  await page.addInitScript(() => {
    const calls = (window.__calls = { timers: 0, storage: 0, api: 0 });
    for (const name of ["setTimeout", "setInterval"]) {
      const orig = window[name];
      window[name] = function (...args) {
        calls.timers++;
        return orig.apply(this, args);
      };
    }
    const setItem = Storage.prototype.setItem;
    Storage.prototype.setItem = function (...args) {
      calls.storage++;
      return setItem.apply(this, args);
    };
    const fetch = window.fetch;
    window.fetch = function (input, init) {
      if (String(input.url || input).includes("/v1/")) calls.api++;
      return fetch.call(this, input, init);
    };
  });
  const apiRequests = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname.startsWith("/v1/")) apiRequests.push(`${r.method()} ${new URL(r.url()).pathname}`);
  });

  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  await page.waitForLoadState("networkidle");

  expect(apiRequests).toEqual([]);
  expect(await page.evaluate(() => window.__calls)).toEqual({ timers: 0, storage: 0, api: 0 });
  expect(await page.evaluate(() => document.cookie)).toBe("");
  expect(await page.evaluate(() => localStorage.length + sessionStorage.length)).toBe(0);

  // The counters do see the widget's work once the visitor asks for a code.
  await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  // One code request; the session's event stream follows it.
  expect(apiRequests.filter((r) => r.startsWith("POST")).length).toBe(1);
  expect(apiRequests[0]).toBe("POST /v1/codes");
  const calls = await page.evaluate(() => window.__calls);
  expect(calls.api).toBe(1);
  expect(calls.timers).toBeGreaterThan(0);
});

test("the footer link sits in the site's marked spot and works from the keyboard", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(page.locator("footer [data-agent-assist] agent-assist-widget")).toHaveCount(1);
  await w.link.focus();
  await expect(w.link).toBeFocused();
  await codeResponse(page, () => page.keyboard.press("Enter"));
  await expect(w.dialog).toBeVisible();
});

test("click shows the code the broker issued, grouped, readable digit by digit, counting down", async ({ page, broker, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.goto(broker.url + "/");
  const w = widget(page);
  const { status, body } = await codeResponse(page, () => w.link.click());
  expect(status).toBe(201);
  expect(body.code).toMatch(/^\d{6}$/);

  await expect(w.dialog).toBeVisible();
  await expect(w.dialog).toHaveAccessibleName("Share your screen with support");
  await expect(w.dialog.getByRole("listitem")).toHaveCount(5);
  await expect(w.dialog.getByRole("link", { name: "Privacy Statement" })).toHaveAttribute("href", broker.url + "/privacy.html");

  // Shown as two groups of three.
  const groups = w.code.locator("span[aria-hidden=true]");
  await expect(groups).toHaveText([body.code.slice(0, 3), body.code.slice(3)]);
  // Screen readers get the digits one by one.
  await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
  await expect(page.getByRole("status")).toContainText(body.code.split("").join(" "));

  // The broker reports this very session as live (pending).
  const live = await broker.api("GET", `/v1/sessions/${body.session_id}`, { token: body.device_token });
  expect(live.status).toBe(200);
  expect(live.body.state).toBe("pending");
  expect(body.expires_in).toBe(1200);

  // The countdown starts at the code's lifetime and goes down.
  const first = mmss(await w.time.textContent());
  expect(first).toBeLessThanOrEqual(1200);
  expect(first).toBeGreaterThan(1190);
  await expect.poll(async () => mmss(await w.time.textContent())).toBeLessThan(first);

  // Copying the code yields exactly its six digits.
  await w.code.click({ clickCount: 3 });
  await page.keyboard.press("Control+C");
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(body.code);
});

test("the code is spoken once the modal is open, also when the code comes with the modal", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  // The first click loads the widget module; the second finds it loaded,
  // and a quick broker's code then opens the modal with it.
  await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();
  await page.evaluate(() => {
    const dialog = document.querySelector("agent-assist-widget").shadowRoot.querySelector("dialog");
    const status = dialog.querySelector("[role=status]");
    const order = (window.__order = []);
    dialog.addEventListener("toggle", (e) => order.push(`toggle ${e.newState}`));
    new MutationObserver(() => order.push(`status ${status.textContent}`)).observe(status, { childList: true, characterData: true, subtree: true });
  });
  const { body } = await codeResponse(page, () => w.link.click());
  const spoken = body.code.split("").join(" ");
  await expect(page.getByRole("status")).toContainText(spoken);
  // A live region is read out when its text changes, not when it appears
  // with its dialog: the code reaches it in a later task than the opening
  // (whose toggle event is itself a task of its own).
  const order = await page.evaluate(() => window.__order);
  const opened = order.indexOf("toggle open");
  const said = order.findIndex((e) => e.includes(spoken));
  expect(opened, order.join(" | ")).toBeGreaterThanOrEqual(0);
  expect(said, order.join(" | ")).toBeGreaterThan(opened);
});

test("Cancel withdraws the code at the broker and returns focus to the link", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  const { body } = await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  const cancelled = page.waitForResponse((r) => r.url().endsWith("/cancel"));
  await w.cancel.click();
  expect((await cancelled).status()).toBe(200);
  await expect(w.dialog).toBeHidden();
  await expect(w.link).toBeFocused();
  const after = await broker.api("GET", `/v1/sessions/${body.session_id}`, { token: body.device_token });
  expect(after.body).toMatchObject({ state: "ended", end_reason: "device_cancelled" });
});

for (const how of ["Escape", "close button"]) {
  test(`${how} also withdraws the code`, async ({ page, broker }) => {
    await page.goto(broker.url + "/");
    const w = widget(page);
    const { body } = await codeResponse(page, () => w.link.click());
    await expect(w.code).toBeVisible();
    const cancelled = page.waitForResponse((r) => r.url().endsWith("/cancel"));
    if (how === "Escape") await page.keyboard.press("Escape");
    else await w.close.click();
    await cancelled;
    await expect(w.dialog).toBeHidden();
    const after = await broker.api("GET", `/v1/sessions/${body.session_id}`, { token: body.device_token });
    expect(after.body.end_reason).toBe("device_cancelled");
  });
}

test("keyboard focus stays inside the open modal", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  await expect(w.close).toBeFocused();
  const inside = () =>
    page.evaluate(() => {
      const host = document.querySelector("agent-assist-widget");
      const active = host.shadowRoot.activeElement;
      return document.activeElement === host && !!active && !!active.closest("dialog");
    });
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press("Tab");
    expect(await inside()).toBe(true);
  }
  await w.close.focus();
  await page.keyboard.press("Shift+Tab");
  await expect(w.cancel).toBeFocused();
  await page.keyboard.press("Tab");
  await expect(w.close).toBeFocused();
});

test("a double click and repeated API calls make one code request", async ({ page, broker }) => {
  const posts = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/v1/codes")) posts.push(r);
  });
  await page.goto(broker.url + "/");
  const w = widget(page);
  await w.link.dblclick();
  await expect(w.code).toBeVisible();
  const codes = await page.evaluate(async () => {
    const widget = await window.AgentAssist.ready;
    widget.open();
    const [a, b] = await Promise.all([widget.createSessionCode(), widget.createSessionCode()]);
    return [a.code, b.code];
  });
  expect(posts.length).toBe(1);
  expect(codes[0]).toBe(codes[1]);
  await expect(w.code.locator("span[aria-hidden=true]")).toHaveText([codes[0].slice(0, 3), codes[0].slice(3)]);
});

test("an expired code says so and offers a new one", async ({ page, broker }) => {
  await page.goto(broker.url + "/support.html");
  const first = await codeResponse(page, () =>
    page.evaluate(async () => {
      const w = await window.AgentAssist.init({ siteKey: "short" });
      window.shortWidget = w;
      w.open();
    })
  );
  expect(first.body.expires_in).toBe(3);
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByRole("paragraph").filter({ hasText: "This code has expired." })).toBeVisible();
  const newCode = dialog.getByRole("button", { name: "Get a new code" });
  await expect(newCode).toBeFocused();
  const status = await broker.api("GET", `/v1/sessions/${first.body.session_id}`, { token: first.body.device_token });
  expect(status.body).toMatchObject({ state: "ended", end_reason: "pending_timeout" });

  const second = await codeResponse(page, () => newCode.click());
  expect(second.body.session_id).not.toBe(first.body.session_id);
  await expect(page.locator("agent-assist-widget .code span[aria-hidden=true]").first()).toHaveText(second.body.code.slice(0, 3));
});

test("the standalone support page gives a code from its one call to action", async ({ page, broker }) => {
  await page.goto(broker.url + "/support.html");
  await expect(page.getByRole("button", { name: "Agent Assist" })).toHaveCount(0);
  const { body } = await codeResponse(page, () => page.getByRole("button", { name: "Get a support code" }).click());
  const w = widget(page);
  await expect(w.dialog).toBeVisible();
  await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
});

test("broker down: a plain-language error, and Try again works once it is back", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  const w = widget(page);
  await expect(w.link).toBeVisible();
  await booted(page);
  await broker.stop();

  await w.link.click();
  const dialog = w.dialog;
  await expect(dialog.getByRole("paragraph").filter({ hasText: "We couldn't reach our support service." })).toBeVisible();
  const retry = dialog.getByRole("button", { name: "Try again" });
  await expect(retry).toBeVisible();
  await expect(page.getByRole("status")).toContainText("couldn't reach");

  await broker.spawn();
  const { status, body } = await codeResponse(page, () => retry.click());
  expect(status).toBe(201);
  await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
});

test("an error answer from the broker: a plain message, Try again, and an error event for the site", async ({ page, broker }) => {
  await page.goto(broker.url + "/support.html");
  await page.evaluate(async () => {
    const w = await window.AgentAssist.init({ siteKey: "no-such-site" });
    const seen = [];
    w.on("error", (e) => seen.push(e));
    window.__seen = seen;
    w.open();
  });
  const dialog = page.getByRole("dialog");
  await expect(dialog.getByRole("paragraph").filter({ hasText: "Something went wrong on our side." })).toBeVisible();
  await expect(dialog.getByRole("button", { name: "Try again" })).toBeFocused();
  const seen = await page.evaluate(() => window.__seen);
  expect(seen).toHaveLength(1);
  expect(seen[0].code).toBe("unknown_site");
});

test("too many codes in a minute: the visitor is asked to wait, and nothing reaches the page's errors", async ({ page, broker }) => {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(broker.url + "/support.html");
  await page.evaluate(async () => {
    window.__seen = [];
    window.__w = await window.AgentAssist.init({ siteKey: "limited" });
    window.__w.on("error", (e) => window.__seen.push(e.code));
  });
  const dialog = page.getByRole("dialog");
  // The site allows two codes a minute per visitor.
  for (let i = 0; i < 2; i++) {
    const { status } = await codeResponse(page, () => page.evaluate(() => window.__w.open()));
    expect(status).toBe(201);
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await expect(dialog).toBeHidden();
  }
  const { status, body } = await codeResponse(page, () => page.evaluate(() => window.__w.open()));
  expect(status).toBe(429);
  expect(body.error).toBe("rate_limited");
  await expect(dialog.getByText("You've asked for several codes in a short time. Please wait a minute, then try again.")).toBeVisible();
  await expect(dialog.getByRole("button", { name: "Try again" })).toBeFocused();
  expect(await page.evaluate(() => window.__seen)).toEqual(["rate_limited"]);
  expect(errors).toEqual([]);
  await page.screenshot({ path: path.join(SHOTS, "modal-busy-light.png"), animations: "disabled" });
  await page.setViewportSize({ width: 320, height: 640 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: path.join(SHOTS, "modal-busy-320px-dark.png"), animations: "disabled" });
});

test("French wording from the browser's language", async ({ browser, broker }) => {
  const context = await browser.newContext({ locale: "fr-FR" });
  const page = await context.newPage();
  await page.goto(broker.url + "/");
  await codeResponse(page, () => page.getByRole("button", { name: "Agent Assist" }).click());
  const dialog = page.getByRole("dialog");
  await expect(dialog).toHaveAccessibleName("Partager votre écran avec le support");
  await expect(dialog.getByRole("button", { name: "Annuler" })).toBeVisible();
  await expect(dialog.getByText("Expire dans")).toBeVisible();
  await context.close();
});

test("bad config is refused with the field's name, and destroy removes everything", async ({ page, broker }) => {
  await page.goto(broker.url + "/");
  await expect(widget(page).link).toBeVisible();
  const errors = await page.evaluate(async () => {
    const attempts = [
      {},
      { siteKey: "" },
      { siteKey: "demo", brokr: "x" },
      { siteKey: "demo", broker: "ftp://x" },
      { siteKey: "demo", theme: "blue" },
      { siteKey: "demo", strings: { cancle: "x" } },
      { siteKey: "demo", strings: { notices: "x" } },
      "demo",
    ];
    const out = [];
    for (const config of attempts) {
      try {
        await window.AgentAssist.init(config);
        out.push("accepted");
      } catch (e) {
        out.push(`${e.code}: ${e.message}`);
      }
    }
    return out;
  });
  expect(errors[0]).toContain("`siteKey` is required");
  expect(errors[1]).toContain("`siteKey`");
  expect(errors[2]).toContain("unknown field `brokr`");
  expect(errors[3]).toContain("`broker`");
  expect(errors[4]).toContain("`theme`");
  expect(errors[5]).toContain("`strings.cancle`");
  expect(errors[6]).toContain("`strings.notices`");
  expect(errors[7]).toContain("expected an object");
  for (const e of errors) expect(e.startsWith("config: ")).toBe(true);

  await page.evaluate(async () => (await window.AgentAssist.ready).destroy());
  await expect(page.locator("agent-assist-widget")).toHaveCount(0);
});

test("screenshots of every modal state: light, dark, 320 px", async ({ browser, broker }) => {
  const shoot = async (name, options, setup) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.on("pageerror", (err) => {
      throw err;
    });
    await page.goto(broker.url + "/");
    const w = widget(page);
    await expect(w.link).toBeVisible();
    await booted(page);
    // A setup that takes its own picture (mid-flight states) returns "shot".
    if ((await setup(page, w)) !== "shot") await page.screenshot({ path: path.join(SHOTS, `${name}.png`), animations: "disabled" });
    await context.close();
  };
  const showCode = async (page, w) => {
    await codeResponse(page, () => w.link.click());
    await expect(w.time).toHaveText(/^\d\d:\d\d$/);
  };
  const desktop = { viewport: { width: 1280, height: 800 } };
  const dark = { ...desktop, colorScheme: "dark" };
  const narrow = { viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true };
  await shoot("footer-link", desktop, async (page, w) => {
    await w.link.scrollIntoViewIfNeeded();
    await w.link.focus();
  });
  await shoot("modal-code-light", desktop, showCode);
  await shoot("modal-code-dark", dark, showCode);
  await shoot("modal-code-320px", narrow, showCode);
  await shoot("modal-code-320px-dark", { ...narrow, colorScheme: "dark" }, showCode);
  // Loading: the broker is paused (SIGSTOP) so the request stays in flight.
  // The dialog keeps its exact size when the code replaces the placeholder.
  let loadingBox;
  await shoot("modal-loading-light", desktop, async (page, w) => {
    broker.proc.kill("SIGSTOP");
    try {
      await w.link.click();
      await expect(page.locator("agent-assist-widget .skeleton")).toBeVisible();
      // Measure once the opening animation has finished, not during it.
      await w.dialog.evaluate((el) => Promise.all(el.getAnimations().map((a) => a.finished)));
      loadingBox = await w.dialog.boundingBox();
      await page.screenshot({ path: path.join(SHOTS, "modal-loading-light.png"), animations: "disabled" });
    } finally {
      broker.proc.kill("SIGCONT");
    }
    await expect(w.code).toBeVisible();
    await w.dialog.evaluate((el) => Promise.all(el.getAnimations().map((a) => a.finished)));
    const codeBox = await w.dialog.boundingBox();
    expect(codeBox.height).toBe(loadingBox.height);
    expect(codeBox.y).toBe(loadingBox.y);
    return "shot";
  });
  await shoot("modal-error-dark", dark, async (page, w) => {
    await broker.stop();
    await w.link.click();
    await expect(page.getByRole("dialog").getByRole("button", { name: "Try again" })).toBeVisible();
    await broker.spawn();
  });
  await shoot("modal-expired-320px", narrow, async (page) => {
    await page.evaluate(async () => {
      const w = await window.AgentAssist.init({ siteKey: "short", privacyUrl: "/privacy.html" });
      w.open();
    });
    await expect(page.getByRole("button", { name: "Get a new code" })).toBeVisible();
  });
});
