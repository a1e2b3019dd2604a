// The agent console (www/agent.html) end to end: real broker, real page,
// real Chromium. Visitor codes are made and answered through the broker's
// API (as the widget would), so these tests depend on the console alone.
import { test, expect, agentConsole } from "../fixtures.js";
import { agentJwt, signedIdentity } from "../broker.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");
const HOSTILE = `<img src=x onerror="window.__pwned=1">`;

// Every test fails if a page throws (the `pageErrors` fixture); pages the
// test opens itself report into `page.errors` too.

/** A visitor's code, made through the API as the widget would. */
async function visitorCode(broker, visitor, more = {}) {
  const res = await broker.api("POST", "/v1/codes", {
    body: { site_key: "demo", ...(visitor ? { visitor } : {}), ...more },
  });
  expect(res.status).toBe(201);
  return res.body;
}

/**
 * A code of a customer logged in on the demo site, with what identify()
 * sends: the fields and the token the site's server signed.
 */
async function customerCode(broker, options, more = {}) {
  const id = signedIdentity(options);
  const identity = { user_id: id.userId, name: id.name, email: id.email, token: id.token };
  if (id.customData) identity.custom_data = id.customData;
  const res = await broker.api("POST", "/v1/codes", { body: { site_key: "demo", identity, ...more } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** A device's visitor id: 128 random bits as 32 lowercase hex digits. */
const newVisitorId = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");

/** Plays a session through the API: agent `agent` redeems, then `steps`. */
async function pastSession(broker, agent, code, steps) {
  if (agent) {
    const redeemed = await broker.api("POST", "/v1/agent/redeem", { token: agent.token, body: { code: code.code } });
    expect(redeemed.status).toBe(200);
  }
  for (const step of steps) {
    const [what, arg] = step.split(":");
    const res =
      what === "consent"
        ? await broker.api("POST", `/v1/sessions/${code.session_id}/consent`, { token: code.device_token, body: { allow: arg === "allow" } })
        : await broker.api("POST", `/v1/sessions/${code.session_id}/${what === "agent-end" ? "end" : what}`, {
            token: what === "agent-end" ? agent.token : code.device_token,
          });
    expect(res.status, `${step}: ${JSON.stringify(res.body)}`).toBe(200);
  }
}

/** The visitor part of the session card. */
function visitorPanel(page) {
  const history = page.getByRole("region", { name: "Earlier sessions" });
  return {
    identity: page.locator(".session .identity-badge"),
    field: (term) => page.locator(".session .about > dl .fact", { has: page.locator("dt", { hasText: term }) }).locator("dd"),
    custom: page.getByRole("region", { name: "Custom data" }),
    history,
    tickets: history.getByRole("listitem"),
    empty: history.getByText("No earlier sessions"),
  };
}

/** The visitor's answer to the consent prompt, through the API. */
async function consent(broker, code, allow) {
  const res = await broker.api("POST", `/v1/sessions/${code.session_id}/consent`, {
    token: code.device_token,
    body: { allow },
  });
  expect(res.status).toBe(200);
}

/** A code that is certainly not `code`. */
const otherThan = (code) => String((Number(code) + 500_000) % 1_000_000).padStart(6, "0");
const grouped = (code, sep) => code.slice(0, 3) + sep + code.slice(3);

/** The six boxes as one string, `_` for an empty box. */
const boxes = (c) => c.digits.evaluateAll((els) => els.map((e) => e.value || "_").join(""));

async function signIn(page, broker, token) {
  const c = agentConsole(page);
  await page.goto(broker.url + "/agent.html");
  await c.token.fill(token);
  await c.signIn.click();
  await expect(c.digit(1)).toBeFocused();
  return c;
}

/** Types `code` into the boxes and resolves to the redeem answer it triggers. */
async function enterCode(page, c, code) {
  await expect(c.digit(1)).toBeEnabled();
  await c.digit(1).focus();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/agent/redeem")),
    page.keyboard.type(code),
  ]);
  return response;
}

test("a bad token is refused in an alert and nothing is stored", async ({ page, broker }) => {
  await page.goto(broker.url + "/agent.html");
  const c = agentConsole(page);
  await expect(c.token).toBeFocused();
  await expect(c.token).toHaveAttribute("type", "password");
  await c.token.fill("aat_not-a-real-token");
  await c.signIn.click();
  await expect(c.alert).toHaveText("The broker did not accept that token. Check it and try again.");
  await expect(c.token).toBeFocused();
  await expect(c.group).toHaveCount(0);
  expect(await page.evaluate(() => sessionStorage.length + localStorage.length)).toBe(0);
});

test("an API token signs in for this tab: it survives a reload, not a new tab, and Sign out clears it", async ({ page, broker, context }) => {
  const { token } = await broker.addAgent("Dana");
  const c = await signIn(page, broker, token);
  await expect(page.getByText("Signed in as Dana · Lumen Home")).toBeVisible();
  expect(await page.evaluate(() => localStorage.length)).toBe(0);

  await page.reload();
  await expect(page.getByText("Signed in as Dana · Lumen Home")).toBeVisible();
  await expect(c.digit(1)).toBeFocused();

  // sessionStorage belongs to the tab: another tab starts signed out.
  const other = await context.newPage();
  other.on("pageerror", (err) => page.errors.push(String(err)));
  await other.goto(broker.url + "/agent.html");
  await expect(agentConsole(other).token).toBeVisible();
  await other.close();

  await c.signOut.click();
  await expect(c.token).toBeFocused();
  await expect(page.getByText(/Signed in as/)).toHaveCount(0);
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  await page.reload();
  await expect(c.token).toBeVisible();
});

test("a JWT signed with the site's secret signs in; one with another secret does not", async ({ page, broker }) => {
  await page.goto(broker.url + "/agent.html");
  const c = agentConsole(page);
  await c.token.fill(agentJwt({ name: "Robin", secret: "x".repeat(40) }));
  await c.signIn.click();
  await expect(c.alert).toHaveText("The broker did not accept that token. Check it and try again.");

  await c.token.fill(agentJwt({ name: "Robin" }));
  await c.signIn.click();
  await expect(page.getByText("Signed in as Robin · Lumen Home")).toBeVisible();
  // The JWT works for redeeming too.
  const code = await visitorCode(broker);
  const response = await enterCode(page, c, code.code);
  expect(response.status()).toBe(200);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
});

test("typing fills the boxes, skips non-digits, Backspace goes back across boxes, the sixth digit connects", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  await expect(c.group).toBeVisible();
  await expect(c.digits).toHaveCount(6);

  await page.keyboard.type("a1 -2x");
  expect(await boxes(c)).toBe("12____");
  await expect(c.digit(3)).toBeFocused();
  await page.keyboard.type("9");
  await expect(c.digit(4)).toBeFocused();
  // Box 4 is empty: Backspace clears box 3 and moves there, then box 2.
  await page.keyboard.press("Backspace");
  await expect(c.digit(3)).toBeFocused();
  expect(await boxes(c)).toBe("12____");
  await page.keyboard.press("Backspace");
  await expect(c.digit(2)).toBeFocused();
  expect(await boxes(c)).toBe("1_____");
  await page.keyboard.press("ArrowLeft");
  await expect(c.digit(1)).toBeFocused();
  await page.keyboard.press("ArrowRight");
  await expect(c.digit(2)).toBeFocused();
  await page.keyboard.press("Backspace");
  expect(await boxes(c)).toBe("______");
  await expect(c.digit(1)).toBeFocused();

  const redeems = [];
  page.on("request", (r) => {
    if (r.url().endsWith("/v1/agent/redeem")) redeems.push(r.postDataJSON());
  });
  await page.keyboard.type(code.code.slice(0, 5));
  expect(await boxes(c)).toBe(code.code.slice(0, 5) + "_");
  await expect(c.digit(6)).toBeFocused();
  expect(redeems).toEqual([]);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/agent/redeem")),
    page.keyboard.type(code.code[5]),
  ]);
  expect(response.status()).toBe(200);
  expect(redeems).toEqual([{ code: code.code }]);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
});

test("a code pasted into a middle box fills all six and connects, as 123 456 and as 123-456", async ({ page, broker, context }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const { token } = await broker.addAgent("Dana");
  const c = await signIn(page, broker, token);
  for (const [sep, box] of [[" ", 3], ["-", 4]]) {
    const code = await visitorCode(broker);
    const text = grouped(code.code, sep);
    await page.evaluate((t) => navigator.clipboard.writeText(t), text);
    await c.digit(box).focus();
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/v1/agent/redeem")),
      page.keyboard.press("ControlOrMeta+V"),
    ]);
    expect(response.request().postDataJSON(), `pasted "${text}" into box ${box}`).toEqual({ code: code.code });
    expect(response.status()).toBe(200);
    await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");

    await c.end.click();
    await expect(c.status).toHaveText("You ended the session");
    await c.newCode.click();
    await expect(c.digit(1)).toBeFocused();
    expect(await boxes(c)).toBe("______");
  }
});

test("the visitor's name and email are shown as text, never as HTML", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker, { name: HOSTILE, email: "jo@example.com" });
  const c = await signIn(page, broker, token);
  const response = await enterCode(page, c, code.code);
  expect(response.status()).toBe(200);
  await expect(c.visitor).toHaveText(HOSTILE);
  await expect(page.locator(".session dd", { hasText: "jo@example.com" })).toBeVisible();
  await expect(page.locator(".session dd", { hasText: HOSTILE })).toHaveText(HOSTILE);
  await expect(page.locator("img")).toHaveCount(0);
  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
});

test("a visitor who typed a name and email: shown under an Unverified badge, with no earlier sessions", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker, { name: "Jo Visitor", email: "jo@example.com" });
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  const v = visitorPanel(page);
  await expect(c.visitor).toHaveText("Jo Visitor");
  await expect(c.visitor).toBeFocused();
  await expect(v.identity).toHaveText("Unverified — typed by the visitor");
  await expect(page.getByText("Confirm who they are before discussing an account.")).toBeVisible();
  await expect(v.field("Name")).toHaveText("Jo Visitor");
  await expect(v.field("Email")).toHaveText("jo@example.com");
  await expect(v.field("User id")).toHaveCount(0);
  await expect(v.custom).toBeHidden();
  await expect(v.history.getByRole("heading", { name: "Earlier sessions" })).toBeVisible();
  await expect(v.empty).toBeVisible();
});

test("an anonymous visitor is a Web User with an Anonymous visitor badge", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker, null, { visitor_id: newVisitorId() });
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  const v = visitorPanel(page);
  await expect(c.visitor).toHaveText(/^Web User - \d\d\/\d\d \d\d:\d\d$/);
  await expect(v.identity).toHaveText("Anonymous visitor");
  await expect(v.field("Name")).toHaveCount(0);
  await expect(v.field("Email")).toHaveCount(0);
  await expect(v.field("Session")).toHaveText(code.session_id);
  await expect(v.empty).toBeVisible();
});

test("a returning visitor: earlier sessions show their agent and outcome, and this one's outcome appears when it ends", async ({ page, broker }) => {
  const visitor_id = newVisitorId();
  // The first session, another agent's, ended by the visitor.
  const robin = await broker.addAgent("Robin");
  const first = await visitorCode(broker, null, { visitor_id });
  await pastSession(broker, robin, first, ["consent:allow", "end"]);

  const { token } = await broker.addAgent("Dana");
  const c = await signIn(page, broker, token);
  const second = await visitorCode(broker, null, { visitor_id });
  expect((await enterCode(page, c, second.code)).status()).toBe(200);
  const v = visitorPanel(page);
  await expect(v.tickets).toHaveCount(2);
  // Newest first: this session, then Robin's.
  await expect(v.tickets.nth(0)).toContainText("This session");
  await expect(v.tickets.nth(0)).toContainText("Agent: Dana");
  await expect(v.tickets.nth(0)).toContainText("Waiting for consent");
  await expect(v.tickets.nth(1)).not.toContainText("This session");
  await expect(v.tickets.nth(1)).toContainText("Agent: Robin");
  await expect(v.tickets.nth(1)).toContainText("The visitor ended the session");
  await expect(v.empty).toBeHidden();
  // The date and time are the browser's, in the agent's locale.
  const created = await v.tickets.nth(1).locator("time").getAttribute("datetime");
  const local = await page.evaluate(
    (iso) => new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)),
    created
  );
  await expect(v.tickets.nth(1).locator("time")).toHaveText(local);

  await consent(broker, second, true);
  await expect(c.status).toHaveText("Connected — the visitor allowed you in");
  await expect(v.tickets.nth(0)).toContainText("Active");
  const refreshed = page.waitForResponse((r) => r.url().endsWith(`/v1/sessions/${second.session_id}/visitor`));
  await c.end.click();
  expect((await refreshed).status()).toBe(200);
  await expect(v.tickets.nth(0)).toContainText("This session");
  await expect(v.tickets.nth(0)).toContainText("The agent ended the session");
  await expect(v.tickets).toHaveCount(2);
});

test("a verified customer: user id and custom data are shown, as text even when they hold HTML", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await customerCode(broker, {
    userId: "u-7",
    name: HOSTILE,
    email: "alex@example.com",
    customData: { plan: "Gold", [HOSTILE]: `<script>window.__pwned=2</script>` },
  });
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  const v = visitorPanel(page);
  await expect(c.visitor).toHaveText(HOSTILE);
  await expect(v.identity).toHaveText("Verified");
  await expect(v.field("User id")).toHaveText("u-7");
  await expect(v.field("Email")).toHaveText("alex@example.com");
  await expect(v.custom.getByRole("heading", { name: "Custom data" })).toBeVisible();
  await expect(v.custom.locator("dt")).toHaveText([HOSTILE, "plan"]);
  await expect(v.custom.locator("dd")).toHaveText(["<script>window.__pwned=2</script>", "Gold"]);
  await expect(page.locator("img")).toHaveCount(0);
  await expect(page.locator(".session script")).toHaveCount(0);
  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
});

test("the session goes waiting → connected when the visitor allows → ended when the agent clicks End", async ({ page, broker }) => {
  // The page's strict CSP (no inline script or style) is never violated.
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker, { name: "Jo Visitor" });
  const c = await signIn(page, broker, token);
  const response = await enterCode(page, c, code.code);
  expect(response.status()).toBe(200);
  await expect(c.visitor).toHaveText("Jo Visitor");
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
  // The visitor has two minutes (the default) to answer.
  await expect(page.getByText(/^The request times out in [0-2]:\d\d$/)).toBeVisible();

  await consent(broker, code, true);
  await expect(c.status).toHaveText("Connected — the visitor allowed you in");
  await expect(page.getByText(/The request times out/)).toBeHidden();

  const ended = page.waitForResponse((r) => r.url().endsWith(`/v1/sessions/${code.session_id}/end`));
  await c.end.click();
  expect((await ended).status()).toBe(200);
  await expect(c.status).toHaveText("You ended the session");
  await expect(c.end).toBeHidden();
  await expect(c.newCode).toBeFocused();
  const after = await broker.api("GET", `/v1/sessions/${code.session_id}`, { token: code.device_token });
  expect(after.body).toMatchObject({ state: "ended", end_reason: "agent_ended" });

  await c.newCode.click();
  await expect(c.digit(1)).toBeFocused();
  expect(await page.evaluate(() => window.__violations)).toEqual([]);
});

test("a visitor who denies: the console says so", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
  await consent(broker, code, false);
  await expect(c.status).toHaveText("The visitor denied the request");
  await expect(c.end).toBeHidden();
  await expect(c.newCode).toBeVisible();
});

test("live state survives a broker restart: the stream reconnects and misses nothing", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");

  await broker.stop();
  await expect(page.getByText("Live updates interrupted. Reconnecting…")).toBeVisible();
  await broker.spawn();
  await consent(broker, code, true);
  await expect(c.status).toHaveText("Connected — the visitor allowed you in");
  await expect(page.getByText("Live updates interrupted. Reconnecting…")).toBeHidden();
});

test("a broker that cannot be reached: the console says so, keeps the digits, and Connect tries again", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  await broker.stop();
  await c.digit(1).focus();
  await Promise.all([
    page.waitForEvent("requestfailed", (r) => r.url().endsWith("/v1/agent/redeem")),
    page.keyboard.type(code.code),
  ]);
  await expect(c.alert).toHaveText("Can't reach the broker. Try again.");
  expect(await boxes(c)).toBe(code.code);
  await expect(c.connect).toBeFocused();

  await broker.spawn();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/agent/redeem")),
    c.connect.click(),
  ]);
  expect(response.status()).toBe(200);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
});

test("a wrong code is refused with the digits in the message, the boxes cleared and focus on the first", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  const wrong = otherThan(code.code);
  expect((await enterCode(page, c, wrong)).status()).toBe(404);
  await expect(c.alert).toHaveText(`No live code matches ${grouped(wrong, " ")}. Check the digits with the visitor.`);
  await expect(c.digit(1)).toBeFocused();
  expect(await boxes(c)).toBe("______");
  // The right code still works afterwards.
  expect((await enterCode(page, c, code.code)).status()).toBe(200);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
});

test("after 5 wrong codes the console is locked, with the time to wait and disabled boxes", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const c = await signIn(page, broker, token);
  const wrong = otherThan(code.code);
  for (let i = 1; i <= 5; i++) {
    expect((await enterCode(page, c, wrong)).status(), `wrong code ${i}`).toBe(404);
    await expect(c.alert).toContainText("No live code matches");
  }
  // Even the right code is refused now, and the console says for how long.
  const locked = await enterCode(page, c, code.code);
  expect(locked.status()).toBe(429);
  const { retry_after } = await locked.json();
  await expect(c.alert).toHaveText(`Too many wrong codes. Try again in ${Math.ceil(retry_after / 60)} min.`);
  for (let n = 1; n <= 6; n++) await expect(c.digit(n)).toBeDisabled();
  await expect(c.connect).toBeDisabled();
  await expect(page.getByText(/^Code entry unlocks in \d+:\d\d$/)).toBeVisible();
});

test("a code the visitor cancelled is no live code", async ({ page, broker }) => {
  const { token } = await broker.addAgent("Dana");
  const code = await visitorCode(broker);
  const cancelled = await broker.api("POST", `/v1/sessions/${code.session_id}/cancel`, { token: code.device_token });
  expect(cancelled.status).toBe(200);
  const c = await signIn(page, broker, token);
  expect((await enterCode(page, c, code.code)).status()).toBe(404);
  await expect(c.alert).toHaveText(`No live code matches ${grouped(code.code, " ")}. Check the digits with the visitor.`);
});

test("a revoked token sends the agent back to sign-in with a message", async ({ page, broker }) => {
  const { id, token } = await broker.addAgent("Dana");
  const c = await signIn(page, broker, token);
  const code = await visitorCode(broker);
  await broker.revokeAgent(id);
  expect((await enterCode(page, c, code.code)).status()).toBe(401);
  await expect(c.alert).toHaveText("Your sign-in has expired or was revoked. Sign in again.");
  await expect(c.token).toBeFocused();
  await expect(page.getByText(/Signed in as/)).toHaveCount(0);
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
});

// Screenshots of every state, in light, dark and at 360 px. Each variant
// has its own broker (the fixture), so its wrong codes lock only itself.
for (const variant of [
  { name: "light", scheme: "light", viewport: { width: 1024, height: 720 } },
  { name: "dark", scheme: "dark", viewport: { width: 1024, height: 720 } },
  { name: "360", scheme: "light", viewport: { width: 360, height: 760 } },
]) {
  test(`screenshots (${variant.name})`, async ({ page, broker }) => {
    await page.setViewportSize(variant.viewport);
    await page.emulateMedia({ colorScheme: variant.scheme });
    const shot = (state) =>
      page.screenshot({ path: path.join(SHOTS, `agent-${state}-${variant.name}.png`), animations: "disabled", fullPage: true });
    const { token } = await broker.addAgent("Dana");

    await page.goto(broker.url + "/agent.html");
    const c = agentConsole(page);
    await expect(c.token).toBeFocused();
    await shot("sign-in");

    await c.token.fill(token);
    await c.signIn.click();
    await expect(c.digit(1)).toBeFocused();
    const code = await visitorCode(broker, { name: "Jo Visitor", email: "jo.visitor@example.com" });
    const wrong = otherThan(code.code);
    await page.keyboard.type(wrong.slice(0, 4));
    await shot("code-typing");
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/v1/agent/redeem")),
      page.keyboard.type(wrong.slice(4)),
    ]);
    await expect(c.alert).toContainText("No live code matches");
    await shot("code-error");
    // Touch targets of at least 44 px and no sideways scrolling, phones included.
    for (const target of [c.digit(1), c.digit(6), c.connect, c.signOut]) {
      const box = await target.boundingBox();
      expect(Math.min(box.width, box.height)).toBeGreaterThanOrEqual(44);
    }
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(variant.viewport.width);

    await enterCode(page, c, code.code);
    await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");
    await shot("waiting");
    await consent(broker, code, true);
    await expect(c.status).toHaveText("Connected — the visitor allowed you in");
    await shot("connected");
    await c.end.click();
    await expect(c.status).toHaveText("You ended the session");
    await shot("ended");

    // Four more wrong codes make five; the sixth attempt meets the lock.
    await c.newCode.click();
    for (let i = 2; i <= 5; i++) {
      await enterCode(page, c, wrong);
      await expect(c.alert).toContainText("No live code matches");
    }
    await enterCode(page, c, wrong);
    await expect(c.alert).toContainText("Too many wrong codes");
    await shot("locked");
  });
}

// The visitor panel of a verified customer with custom data and a history
// (one session from before they logged in, merged), in light, dark and at
// 360 px.
for (const variant of [
  { name: "light", scheme: "light", viewport: { width: 1024, height: 720 } },
  { name: "dark", scheme: "dark", viewport: { width: 1024, height: 720 } },
  { name: "360", scheme: "light", viewport: { width: 360, height: 760 } },
]) {
  test(`visitor screenshots (${variant.name})`, async ({ page, broker }) => {
    await page.setViewportSize(variant.viewport);
    await page.emulateMedia({ colorScheme: variant.scheme });
    const robin = await broker.addAgent("Robin Okafor");
    const visitor_id = newVisitorId();
    const customer = {
      userId: "cust-20931",
      name: "Alex Martin",
      email: "alex.martin@example.com",
      customData: { plan: "Gold", account: "FR76 3000 4000 0312 3456 7890 143", "last order": "#48213 — 2 items" },
    };
    // Before logging in: an anonymous session the visitor cancelled.
    await pastSession(broker, null, await visitorCode(broker, null, { visitor_id }), ["cancel"]);
    await pastSession(broker, robin, await customerCode(broker, customer, { visitor_id }), ["consent:deny"]);
    await pastSession(broker, robin, await customerCode(broker, customer, { visitor_id }), ["consent:allow", "agent-end"]);

    const { token } = await broker.addAgent("Dana");
    const c = await signIn(page, broker, token);
    const code = await customerCode(broker, customer, { visitor_id });
    expect((await enterCode(page, c, code.code)).status()).toBe(200);
    await consent(broker, code, true);
    await expect(c.status).toHaveText("Connected — the visitor allowed you in");
    const v = visitorPanel(page);
    await expect(v.identity).toHaveText("Verified");
    await expect(v.tickets).toHaveCount(4);
    await expect(v.tickets.nth(3)).toContainText("The visitor cancelled");
    await expect(v.tickets.nth(3)).toContainText("No agent");
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(variant.viewport.width);
    await page.screenshot({ path: path.join(SHOTS, `agent-visitor-${variant.name}.png`), animations: "disabled", fullPage: true });
  });
}
