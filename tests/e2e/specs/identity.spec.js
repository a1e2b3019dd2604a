// Who the visitor is (seeds 002, 003): one scenario per client-authentication
// mode against the real broker and pages, and the anonymous visitor whose
// history follows them after they log in on the demo shop.
import { test, expect, widget, codeResponse, agentApi } from "../fixtures.js";
import { signedIdentity } from "../broker.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");



/** A widget for `siteKey` in `auth` mode, with its link in the page's footer. */
async function mountWidget(page, broker, siteKey, auth, extra = {}) {
  await page.goto(broker.url + "/privacy.html");
  await page.evaluate(
    async ({ siteKey, auth, extra }) => {
      const footer = document.createElement("footer");
      document.body.append(footer);
      // privacy.html has no widget of its own: load the script like a site.
      await new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "/sdk/agent-assist.js";
        s.onload = resolve;
        s.onerror = reject;
        document.head.append(s);
      });
      window.widget = await window.AgentAssist.init({ siteKey, auth, ...extra });
      window.widget.mountFooterLink(footer);
    },
    { siteKey, auth, extra }
  );
}

test("visitor mode: an anonymous visitor appears as a Web User with an id kept on the device", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  await page.goto(broker.url + "/");
  expect(await page.evaluate(() => localStorage.length)).toBe(0);
  const { body } = await codeResponse(page, () => widget(page).link.click());
  const stored = await page.evaluate(() => Object.keys(localStorage));
  expect(stored).toEqual(["agent-assist:visitor:demo"]);
  expect(await page.evaluate(() => localStorage.getItem("agent-assist:visitor:demo"))).toMatch(/^[0-9a-f]{32}$/);
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  expect(redeemed.body.visitor.kind).toBe("anonymous");
  expect(redeemed.body.visitor.display_name).toMatch(/^Web User - \d\d\/\d\d \d\d:\d\d$/);
});

test("code mode: hidden until identify, then the agent sees the verified user and custom data", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana", { site: "bank" });
  await mountWidget(page, broker, "bank", "code");
  await expect(page.getByRole("button", { name: "Agent Assist" })).toBeHidden();
  const identity = signedIdentity({ userId: "u-7", name: "Alex Martin", email: "alex@example.com", customData: { plan: "Gold" } });
  await page.evaluate((id) => window.widget.identify(id), identity);
  const link = page.getByRole("button", { name: "Agent Assist" });
  await expect(link).toBeVisible();
  const { status, body } = await codeResponse(page, () => link.click());
  expect(status).toBe(201);
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  expect(redeemed.body.visitor).toMatchObject({
    kind: "verified",
    user_id: "u-7",
    display_name: "Alex Martin",
    email: "alex@example.com",
    custom_data: { plan: "Gold" },
  });
});

test("code mode: a forged identity is refused with a plain message and nothing is issued", async ({ page, broker }) => {
  await mountWidget(page, broker, "bank", "code");
  const forged = signedIdentity({ userId: "u-7", name: "Alex Martin", secret: "not-the-site-secret-0123456789abcdefghij" });
  await page.evaluate((id) => window.widget.identify(id), forged);
  const { status, body } = await codeResponse(page, () => page.getByRole("button", { name: "Agent Assist" }).click());
  expect(status).toBe(401);
  expect(body.error).toBe("invalid_identity");
  await expect(page.getByRole("dialog").getByRole("paragraph").filter({ hasText: "couldn't confirm who you are" })).toBeVisible();
});

test("form mode: name and email are required, errors are announced, then the agent sees typed data", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana", { site: "form" });
  const posts = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/v1/codes")) posts.push(r);
  });
  await mountWidget(page, broker, "form", "form");
  await page.getByRole("button", { name: "Agent Assist" }).click();
  const dialog = page.getByRole("dialog");
  const name = dialog.getByLabel("Your name");
  const email = dialog.getByLabel("Your email");
  await expect(name).toBeVisible();
  await dialog.getByRole("button", { name: "Get my code" }).click();
  await expect(name).toHaveAttribute("aria-invalid", "true");
  await expect(name).toBeFocused();
  await name.fill("Jo Visitor");
  await email.fill("not an email");
  await dialog.getByRole("button", { name: "Get my code" }).click();
  await expect(email).toHaveAttribute("aria-invalid", "true");
  expect(posts).toHaveLength(0);
  await page.screenshot({ path: path.join(SHOTS, "form-errors-light.png"), animations: "disabled" });
  await email.fill("jo@example.com");
  const { body } = await codeResponse(page, () => email.press("Enter"));
  await expect(widget(page).code).toBeVisible();
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  expect(redeemed.body.visitor).toMatchObject({ kind: "typed", name: "Jo Visitor", email: "jo@example.com", display_name: "Jo Visitor" });
});

test("optional-form mode: Continue as guest gives a code without data", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana", { site: "optional" });
  await mountWidget(page, broker, "optional", "optional-form");
  await page.getByRole("button", { name: "Agent Assist" }).click();
  const { body } = await codeResponse(page, () => page.getByRole("button", { name: "Continue as guest" }).click());
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
  expect(redeemed.body.visitor.kind).toBe("anonymous");
});

test("an anonymous visitor's session follows them after they log in on the demo shop", async ({ page, broker }) => {
  const agent = await broker.addAgent("Dana");
  // First, anonymous: a code, a session, ended by the agent.
  await page.goto(broker.url + "/");
  const first = await codeResponse(page, () => widget(page).link.click());
  await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: first.body.code });
  await page.getByRole("dialog", { name: /^Allow/ }).getByRole("button", { name: "Allow" }).click();
  await agentApi(broker, agent.token, "POST", `/v1/sessions/${first.body.session_id}/end`);
  await expect(page.locator("agent-assist-widget .indicator")).toContainText("ended");

  // Then the visitor logs in (the demo shop's fake login signs the identity
  // server-side) and asks for help again.
  await page.getByRole("button", { name: "Sign in as Alex (demo)" }).click();
  await expect(page.getByText("Signed in as Alex Martin")).toBeVisible();
  const second = await codeResponse(page, () => widget(page).link.click());
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: second.body.code });
  const visitor = redeemed.body.visitor;
  expect(visitor.kind).toBe("verified");
  expect(visitor.display_name).toBe("Alex Martin");
  expect(visitor.tickets.map((t) => t.session_id)).toEqual([second.body.session_id, first.body.session_id]);
  expect(visitor.tickets[1]).toMatchObject({ state: "ended", end_reason: "agent_ended", agent_name: "Dana" });

  // The visitor declines this second session, then signs out: reset()
  // forgets the visitor on this device.
  await page.getByRole("dialog", { name: /^Allow/ }).getByRole("button", { name: "Deny" }).click();
  await page.getByRole("button", { name: "Sign out" }).click();
  await expect.poll(() => page.evaluate(() => localStorage.getItem("agent-assist:visitor:demo"))).toBeNull();
});

test("screenshots: the form in dark and at 320 px", async ({ browser, broker }) => {
  for (const [name, options] of [
    ["form-dark", { viewport: { width: 1280, height: 800 }, colorScheme: "dark" }],
    ["form-320px", { viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true }],
  ]) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    await mountWidget(page, broker, "optional", "optional-form");
    await page.getByRole("button", { name: "Agent Assist" }).click();
    await expect(page.getByRole("button", { name: "Continue as guest" })).toBeVisible();
    await page.screenshot({ path: path.join(SHOTS, `${name}.png`), animations: "disabled" });
    await context.close();
  }
});
