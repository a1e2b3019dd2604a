// The widget on a customer's site: the page from the site's own origin,
// the script tag pointing at the broker's, as the README tells a site owner
// to embed it. The boot wasm (fetch), the widget and co-browsing modules
// (import()) and the API calls all cross origins here.
import { test, expect, widget, codeResponse, agentApi, booted } from "../fixtures.js";
import { Broker } from "../broker.js";
import { startSite, page as sitePage } from "../site.js";

test("a site on another origin embeds the script tag and the whole flow works", async ({ page }) => {
  const files = {};
  const site = await startSite(files);
  const broker = await Broker.start({ origins: [site.url] });
  try {
    files["/"] = sitePage(`<h1>Lumen Home</h1>
<footer><p>© Lumen Home</p></footer>
<script src="${broker.url}/sdk/agent-assist.js" data-site-key="demo" defer></script>`);
    const errors = [];
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    const sdk = [];
    page.on("response", (r) => {
      if (r.url().startsWith(broker.url + "/sdk/")) sdk.push(r);
    });
    await page.goto(site.url + "/");
    const w = widget(page);
    await expect(w.link).toBeVisible();
    await booted(page);
    // The boot wasm came gzipped and readable cross-origin.
    const boot = sdk.find((r) => r.url().endsWith("/sdk/agent-assist_bg.wasm"));
    expect(boot.status()).toBe(200);
    expect(await boot.headerValue("content-encoding")).toBe("gzip");
    expect(await boot.headerValue("access-control-allow-origin")).toBe("*");

    const { status, body } = await codeResponse(page, () => w.link.click());
    expect(status).toBe(201);
    await expect(w.code.locator(".sr")).toHaveText(body.code.split("").join(" "));

    const agent = await broker.addAgent("Dana");
    const cobrowse = page.waitForResponse((r) => /\/sdk\/cobrowse\/.*\.wasm$/.test(r.url()));
    const redeemed = await agentApi(broker, agent.token, "POST", "/v1/agent/redeem", { code: body.code });
    expect(redeemed.status).toBe(200);
    const prompt = page.getByRole("dialog", { name: "Allow Dana to see this page?" });
    await prompt.getByRole("button", { name: "Allow" }).click();
    await expect(page.locator("agent-assist-widget [role=status]", { hasText: "Your screen is being shared with Dana" })).toBeVisible();
    expect((await cobrowse).status()).toBe(200);
    // The agent sees the site's page, from the site's origin.
    const mirror = await agentApi(broker, agent.token, "GET", `/v1/sessions/${body.session_id}`);
    expect(mirror.status).toBe(200);
    const ended = await agentApi(broker, agent.token, "POST", `/v1/sessions/${body.session_id}/end`);
    expect(ended.body.state).toBe("ended");
    await expect(page.locator("agent-assist-widget").getByText("Dana ended the session.")).toBeVisible();
    expect(errors).toEqual([]);
  } finally {
    await broker.stop();
    broker.cleanup();
    await site.close();
  }
});
