// Scale-out: the demo on two broker replicas sharing one Redis, behind a
// round-robin proxy (replicas.js). The browser only knows the proxy; each
// request, event stream and WebSocket goes to the next replica, so the
// visitor and the agent are served by both, as behind a load balancer.
import { test, expect, widget, codeResponse, agentConsole } from "../fixtures.js";
import { startReplicas } from "../replicas.js";

const consent = (page) => page.getByRole("dialog", { name: /^Allow .* to see this page\?$/ });
const indicator = (page) => page.locator("agent-assist-widget .indicator");
const mirror = (agentPage) => agentPage.frameLocator('iframe[title="Visitor\'s screen"]');

let cluster;
test.beforeEach(async () => {
  cluster = await startReplicas();
});
test.afterEach(async ({}, testInfo) => {
  if (testInfo.status !== testInfo.expectedStatus) {
    for (const [i, b] of cluster.replicas.entries()) {
      await testInfo.attach(`replica-${i}.log`, { body: b.log, contentType: "text/plain" });
    }
  }
  await cluster.stop();
});

test("code, redeem, consent, live mirror and End work with every request going to the other replica in turn", async ({ page, browser }) => {
  const agent = await cluster.replicas[0].addAgent("Dana");
  await page.goto(cluster.url + "/");
  const w = widget(page);
  const { status, body: code } = await codeResponse(page, () => w.link.click());
  expect(status).toBe(201);
  await expect(w.code).toContainText(code.code);

  const context = await browser.newContext();
  const agentPage = await context.newPage();
  await agentPage.goto(cluster.url + "/agent.html");
  const c = agentConsole(agentPage);
  await c.token.fill(agent.token);
  await c.signIn.click();
  await expect(c.digit(1)).toBeFocused();
  await agentPage.keyboard.type(code.code);
  await expect(c.status).toHaveText("Waiting for the visitor to allow you in…");

  // The visitor's prompt comes over its event stream, whichever replica
  // it is on; so does the agent's "Connected".
  await consent(page).getByRole("button", { name: "Allow" }).click();
  await expect(c.status).toHaveText("Connected — the visitor allowed you in");
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");
  const frame = mirror(agentPage);
  await expect(frame.getByRole("heading", { name: "Light that feels like home" })).toBeVisible();

  // Live changes reach the agent through the relay between replicas.
  await page.getByRole("button", { name: "Add to basket" }).first().click();
  await expect(frame.locator("#basket")).toHaveText("Basket (1)");
  await page.getByLabel("Delivery note").fill("Ring twice please");
  await expect(frame.locator("[name=note]")).toHaveValue("Ring twice please");

  await c.end.click();
  await expect(c.status).toHaveText("You ended the session");
  await expect(indicator(page)).toContainText("Dana ended the session.");

  // Both replicas served the API, and event streams and sockets went
  // through the proxy to them.
  const served = cluster.proxy.served;
  for (const s of served) expect(s.api).toBeGreaterThan(2);
  expect(served[0].streams + served[1].streams).toBeGreaterThanOrEqual(2);
  expect(served[0].sockets + served[1].sockets).toBeGreaterThanOrEqual(2);
  await context.close();
});
