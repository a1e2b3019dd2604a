// The widget under a CSP without 'unsafe-inline' (examples/strict-csp).
import { test, expect, widget, codeResponse, agentApi } from "../fixtures.js";

test("the whole flow works under a strict CSP with no violation reported", async ({ page, broker }) => {
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`)
    );
  });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  await page.goto(broker.url + "/examples/strict-csp/");
  const w = widget(page);
  const { body } = await codeResponse(page, () => w.link.click());
  await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));
  // The stylesheet applied: the code is large and the dialog has its panel colour.
  const fontSize = await w.code.evaluate((el) => getComputedStyle(el).fontSize);
  expect(parseFloat(fontSize)).toBeGreaterThanOrEqual(38);
  await w.cancel.click();
  await expect(w.dialog).toBeHidden();

  // Then the rest: an agent redeems a new code, the visitor allows, the
  // co-browsing module loads and streams the page, the agent ends.
  const agent = await broker.addAgent("Dana");
  const { body: second } = await codeResponse(page, () => w.link.click());
  const cobrowse = page.waitForResponse((r) => /\/sdk\/cobrowse\/.*\.wasm$/.test(r.url()));
  const sent = [];
  page.on("websocket", (ws) => {
    if (ws.url().endsWith(`/v1/sessions/${second.session_id}/mirror`)) ws.on("framesent", (f) => sent.push(f.payload));
  });
  const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: second.code });
  expect(redeemed.status).toBe(200);
  const prompt = page.getByRole("dialog", { name: "Allow Dana to see this page?" });
  await prompt.getByRole("button", { name: "Allow" }).click();
  const indicator = page.locator("agent-assist-widget [role=status]", { hasText: "Your screen is being shared with Dana" });
  await expect(indicator).toBeVisible();
  expect((await cobrowse).status()).toBe(200);
  // The mirror socket carries the hello and the page's snapshot.
  await expect.poll(() => sent.length).toBeGreaterThanOrEqual(2);
  const ended = await agentApi(broker, agent.token, "POST", `/v1/sessions/${second.session_id}/end`);
  expect(ended.body.state).toBe("ended");
  await expect(page.locator("agent-assist-widget").getByText("Dana ended the session.")).toBeVisible();

  expect(await page.evaluate(() => window.__violations)).toEqual([]);
  expect(errors).toEqual([]);
});
