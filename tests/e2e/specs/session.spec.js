// The session after the code: an agent redeems it, the visitor is asked for
// consent in a separate prompt, the session runs with an indicator on every
// page, and either side ends it. Visitor and agent are separate browser
// contexts against one real broker.
import { test, expect, widget, codeResponse, agentConsole, agentApi } from "../fixtures.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");



/** The visitor asks for a code on the demo shop; returns the broker's answer. */
async function visitorGetsCode(page, broker) {
  await page.goto(broker.url + "/");
  const w = widget(page);
  const { body } = await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();
  return body;
}

const consent = (page) => page.getByRole("dialog", { name: /^Allow .* to see this page\?$/ });
const indicator = (page) => page.locator("agent-assist-widget .indicator");

/** The agent signs in to the console in its own browser context. */
async function openConsole(browser, broker, token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (err) => {
    throw err;
  });
  await page.goto(broker.url + "/agent.html");
  const c = agentConsole(page);
  await c.token.fill(token);
  await c.signIn.click();
  await expect(c.digit(1)).toBeFocused();
  return { context, page, c };
}

test("both real UIs: the agent types the code in the console, the visitor allows, both see it live, the agent ends", async ({ page, browser, broker }) => {
  const agent = await broker.addAgent("Dana");
  const code = await visitorGetsCode(page, broker);
  const { context, page: agentPage, c } = await openConsole(browser, broker, agent.token);

  // The agent types the six digits the visitor reads out; the sixth connects.
  await agentPage.keyboard.type(code.code);
  await expect(c.status).toContainText("Waiting for the visitor");

  const prompt = consent(page);
  await expect(prompt).toHaveAccessibleName("Allow Dana to see this page?");
  await prompt.getByRole("button", { name: "Allow" }).click();
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");
  await expect(c.status).toContainText("Connected");

  await page.getByRole("link", { name: "Help centre" }).click();
  await expect(page).toHaveURL(/support\.html$/);
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");

  await c.end.click();
  await expect(indicator(page)).toContainText("Dana ended the session.");
  await expect(c.status).toContainText("You ended the session");
  await context.close();
});

test("both real UIs: the visitor denies and the console says so", async ({ page, browser, broker }) => {
  const agent = await broker.addAgent("Dana");
  const code = await visitorGetsCode(page, broker);
  const { context, page: agentPage, c } = await openConsole(browser, broker, agent.token);
  await agentPage.keyboard.type(code.code);
  await consent(page).getByRole("button", { name: "Deny" }).click();
  await expect(c.status).toContainText("denied");
  await expect(indicator(page)).toHaveCount(0);
  await context.close();
});

test("redeem → consent prompt naming the agent → Allow → indicator on every page → agent ends", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  const events = [];
  await page.exposeFunction("__event", (e) => events.push(e));
  const code = await visitorGetsCode(page, broker);
  await page.evaluate(async () => {
    const w = await window.AgentAssist.ready;
    w.on("session.updated", (d) => window.__event({ type: "updated", ...d }));
    w.on("session.ended", (d) => window.__event({ type: "ended", ...d }));
  });

  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  expect(redeemed.status).toBe(200);
  expect(redeemed.body.session.state).toBe("authorizing");

  // The code modal gives way to a separate consent prompt naming the agent.
  const prompt = consent(page);
  await expect(prompt).toBeVisible();
  await expect(prompt).toHaveAccessibleName("Allow Dana to see this page?");
  await expect(page.locator("agent-assist-widget dialog:not(.consent)")).toBeHidden();
  await expect(prompt.getByRole("heading")).toBeFocused();
  await prompt.getByRole("button", { name: "Allow" }).click();

  await expect(indicator(page)).toBeVisible();
  await expect(indicator(page)).toHaveAttribute("role", "status");
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");
  await expect(prompt).toBeHidden();
  const active = await agentApi(broker, agent.token, "GET", `/v1/sessions/${code.session_id}`);
  expect(active.body.state).toBe("active");

  // Another page of the site: the same session, the indicator is still there.
  await page.goto(broker.url + "/support.html");
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");

  const ended = await agentApi(broker, agent.token, "POST", `/v1/sessions/${code.session_id}/end`);
  expect(ended.body).toMatchObject({ state: "ended", end_reason: "agent_ended" });
  await expect(indicator(page)).toContainText("Dana ended the session.");
  await expect(indicator(page)).toHaveCount(0, { timeout: 15_000 });
  expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

  expect(events.map((e) => `${e.type}:${e.state || e.reason}`)).toEqual([
    "updated:authorizing",
    "updated:active",
  ]);
});

test("Deny ends the session; the agent sees consent_denied", async ({ page, broker }) => {
  const agent = await broker.addAgent("Sam");
  const code = await visitorGetsCode(page, broker);
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  await consent(page).getByRole("button", { name: "Deny" }).click();
  await expect(consent(page)).toBeHidden();
  await expect(indicator(page)).toHaveCount(0);
  await expect
    .poll(async () => (await agentApi(broker, agent.token, "GET", `/v1/sessions/${code.session_id}`)).body.end_reason)
    .toBe("consent_denied");
});

test("Escape on the consent prompt denies", async ({ page, broker }) => {
  const agent = await broker.addAgent("Sam");
  const code = await visitorGetsCode(page, broker);
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  await expect(consent(page)).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(consent(page)).toBeHidden();
  await expect
    .poll(async () => (await agentApi(broker, agent.token, "GET", `/v1/sessions/${code.session_id}`)).body.end_reason)
    .toBe("consent_denied");
});

test("the visitor stops sharing from the indicator", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  const code = await visitorGetsCode(page, broker);
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  await consent(page).getByRole("button", { name: "Allow" }).click();
  await indicator(page).getByRole("button", { name: "Stop sharing" }).click();
  await expect(indicator(page)).toContainText("You stopped sharing.");
  const status = await agentApi(broker, agent.token, "GET", `/v1/sessions/${code.session_id}`);
  expect(status.body).toMatchObject({ state: "ended", end_reason: "device_ended" });
});

test("a cancelled code cannot be redeemed", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  const code = await visitorGetsCode(page, broker);
  const cancelled = page.waitForResponse((r) => r.url().endsWith("/cancel"));
  await widget(page).cancel.click();
  await cancelled;
  const res = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  expect(res.status).toBe(404);
  expect(res.body.error).toBe("no_such_code");
});

test("an expired code cannot be redeemed", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana", { site: "short" });
  await page.goto(broker.url + "/support.html");
  const { body } = await codeResponse(page, () =>
    page.evaluate(async () => (await window.AgentAssist.init({ siteKey: "short" })).open())
  );
  await expect(page.getByRole("button", { name: "Get a new code" })).toBeVisible();
  const res = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  expect(res.body.error).toBe("no_such_code");
});

test("a reload keeps the session: the code, then the consent prompt, come back", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  const code = await visitorGetsCode(page, broker);
  await page.reload();
  // Pending: the same code is shown again, still counting down.
  await expect(widget(page).code.locator(".sr")).toHaveText(code.code.split("").join(" "));
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
  await expect(consent(page)).toBeVisible();
  await page.reload();
  await expect(consent(page)).toBeVisible();
  await consent(page).getByRole("button", { name: "Allow" }).click();
  await expect(indicator(page)).toContainText("Dana");
});

test("a site's own consent UI (onConsent) answers instead of ours", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  await page.goto(broker.url + "/support.html");
  const { body } = await codeResponse(page, () =>
    page.evaluate(async () => {
      const w = await window.AgentAssist.init({
        siteKey: "demo",
        onConsent: async ({ agentName }) => {
          window.__asked = agentName;
          return true;
        },
      });
      w.open();
    })
  );
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  await expect.poll(() => page.evaluate(() => window.__asked)).toBe("Dana");
  await expect(consent(page)).toHaveCount(0);
  await expect(indicator(page)).toBeVisible();
});

test("screenshots: consent prompt and indicator, light, dark, 320 px", async ({ browser, broker }) => {
  const agent = await broker.addAgent("Dana");
  const shoot = async (name, options) => {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const code = await visitorGetsCode(page, broker);
    await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: code.code });
    await expect(consent(page)).toBeVisible();
    await page.screenshot({ path: path.join(SHOTS, `consent-${name}.png`), animations: "disabled" });
    await consent(page).getByRole("button", { name: "Allow" }).click();
    await expect(indicator(page)).toBeVisible();
    await page.screenshot({ path: path.join(SHOTS, `indicator-${name}.png`), animations: "disabled" });
    await agentApi(broker, agent.token, "POST", `/v1/sessions/${code.session_id}/end`);
    await expect(indicator(page)).toContainText("ended");
    await page.screenshot({ path: path.join(SHOTS, `indicator-ended-${name}.png`), animations: "disabled" });
    await context.close();
  };
  await shoot("light", { viewport: { width: 1280, height: 800 } });
  await shoot("dark", { viewport: { width: 1280, height: 800 }, colorScheme: "dark" });
  await shoot("320px", { viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true });
});
