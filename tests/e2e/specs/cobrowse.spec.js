// Co-browsing: once the visitor allows, the agent's console shows a live,
// read-only mirror of the visitor's page, and nothing private leaves the
// visitor's browser. Visitor and agent are separate browser contexts on one
// real broker, which records every byte it receives on mirror sockets
// (`--mirror-capture`) so the privacy tests can read all of it.
import { test, expect, widget, codeResponse, agentConsole } from "../fixtures.js";
import path from "node:path";

const SHOTS = path.resolve(import.meta.dirname, "../../../target/screenshots");

const consent = (page) => page.getByRole("dialog", { name: /^Allow .* to see this page\?$/ });
const indicator = (page) => page.locator("agent-assist-widget .indicator");
const mirror = (agentPage) => agentPage.frameLocator('iframe[title="Visitor\'s screen"]');

/**
 * A shared session on the demo shop: the visitor gets a code, the agent
 * (own context) types it, the visitor allows, the agent sees the page.
 */
async function share(page, browser, broker, { colorScheme, viewport } = {}) {
  const agent = await broker.addAgent("Dana");
  await page.goto(broker.url + "/");
  const w = widget(page);
  const { body: code } = await codeResponse(page, () => w.link.click());
  await expect(w.code).toBeVisible();

  const context = await browser.newContext({ colorScheme, viewport });
  const agentPage = await context.newPage();
  agentPage.errors = [];
  agentPage.on("pageerror", (err) => agentPage.errors.push(String(err)));
  await agentPage.goto(broker.url + "/agent.html");
  const c = agentConsole(agentPage);
  await c.token.fill(agent.token);
  await c.signIn.click();
  await expect(c.digit(1)).toBeFocused();
  await agentPage.keyboard.type(code.code);

  await consent(page).getByRole("button", { name: "Allow" }).click();
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");
  const frame = mirror(agentPage);
  await expect(frame.getByRole("heading", { name: "Light that feels like home" })).toBeVisible();
  return { agentPage, context, c, frame };
}

test("the agent sees the visitor's page live: changed text, typing, another page, a page that is not shared", async ({ page, browser, broker }) => {
  const { agentPage, context, frame } = await share(page, browser, broker);
  await expect(agentPage.getByText(broker.url + "/", { exact: true })).toBeVisible();

  // Text the page changes.
  await page.getByRole("button", { name: "Add to basket" }).first().click();
  await expect(page.locator("#basket")).toHaveText("Basket (1)");
  await expect(frame.locator("#basket")).toHaveText("Basket (1)");

  // Typing in a normal field.
  await page.getByLabel("Delivery note").fill("Ring twice please");
  await expect(frame.locator("[name=note]")).toHaveValue("Ring twice please");

  // The visitor follows a link: the agent follows too.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Help" }).click();
  await expect(page).toHaveURL(/support\.html$/);
  await expect(frame.getByRole("heading", { name: "Share your screen with our support team" })).toBeVisible();
  await expect(agentPage.getByText(broker.url + "/support.html", { exact: true })).toBeVisible();

  // A page the site does not share: the agent is told, and sees none of it.
  await page.goto(broker.url + "/account.html");
  await expect(indicator(page)).toContainText("This page is not shared with Dana");
  await expect(agentPage.getByText("The visitor is on a page that is not shared")).toBeVisible();
  await expect(frame.getByText("Orchard Lane")).toHaveCount(0);
  expect(broker.captured().includes("Orchard Lane")).toBe(false);

  // Back on a shared page, the mirror comes back.
  await page.goto(broker.url + "/");
  await expect(indicator(page)).toContainText("Your screen is being shared with Dana");
  await expect(frame.getByRole("heading", { name: "Light that feels like home" })).toBeVisible();
  await expect(agentPage.getByText("The visitor is on a page that is not shared")).toBeHidden();

  expect(agentPage.errors).toEqual([]);
  await context.close();
});

/** Every form of `secret` a careless encoder could have sent it in. */
function encodings(secret) {
  const b64 = (s) => Buffer.from(s).toString("base64");
  const forms = [
    secret,
    secret.toLowerCase(),
    secret.toUpperCase(),
    [...secret].reverse().join(""),
    Buffer.from(secret).toString("hex"),
    encodeURIComponent(secret),
    [...secret].map((ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0")).join(""),
    Buffer.from(secret, "utf16le").toString("latin1"),
    // Base64 at each of the three alignments the secret could start at
    // (the edges depend on the neighbours, so only the inner part is fixed).
    b64(secret).slice(0, -4),
    b64("x" + secret).slice(4, -4),
    b64("xx" + secret).slice(4, -4),
  ];
  // And piecewise: any 6 characters in a row (keystroke by keystroke).
  for (let i = 0; i + 6 <= secret.length; i++) forms.push(secret.slice(i, i + 6));
  return forms;
}

function leaked(captured, secret) {
  const text = captured.toString("latin1");
  const lower = text.toLowerCase();
  return encodings(secret).filter((form) => text.includes(form) || lower.includes(form.toLowerCase()));
}

test("privacy: what is typed into the password, the marked field and the selector-hidden field never reaches the broker, in any encoding", async ({ page, browser, broker }) => {
  const { agentPage, context, frame } = await share(page, browser, broker);

  const secrets = {
    password: "Pw9QzKx7VmTr",
    card: "4929Cz1804Lq",
    phone: "Ph0Nx8Wq2Jk5",
  };
  await page.getByLabel("Password").fill(secrets.password);
  await page.getByLabel("Card number").pressSequentially(secrets.card);
  await page.getByLabel("Phone").pressSequentially(secrets.phone);
  // A normal field, typed last: once the agent sees it, every keystroke
  // before it has been through the broker.
  const visible = "Visible7Note3Text";
  await page.getByLabel("Delivery note").pressSequentially(visible);
  await expect(frame.locator("[name=note]")).toHaveValue(visible);

  const captured = broker.captured();
  // The capture does hold what the agent may see (so the test can fail)…
  expect(captured.includes(visible)).toBe(true);
  // …and none of the private values.
  for (const [field, secret] of Object.entries(secrets)) {
    expect(leaked(captured, secret), `${field} leaked`).toEqual([]);
  }

  // The agent sees boxes where the private fields are, with no value.
  const boxes = frame.locator("[data-agent-assist-redacted]");
  await expect(boxes).toHaveCount(3);
  for (const box of await boxes.all()) {
    await expect(box).toHaveText("");
    const size = await box.boundingBox();
    expect(size.width).toBeGreaterThan(20);
    expect(size.height).toBeGreaterThan(10);
  }
  await expect(frame.locator("[name=password], [name=card], [name=phone]")).toHaveCount(0);

  // The visitor sees which fields are hidden from the agent.
  for (const name of ["password", "card", "phone"]) {
    const outline = await page.locator(`[name=${name}]`).evaluate((e) => getComputedStyle(e).outlineStyle);
    expect(outline, name).toBe("dashed");
  }
  expect(await page.locator("[name=note]").evaluate((e) => getComputedStyle(e).outlineStyle)).not.toBe("dashed");

  expect(agentPage.errors).toEqual([]);
  await context.close();
});

test("a script in the visitor's page never runs in the agent's mirror, and the mirror is sandboxed without scripts", async ({ page, browser, broker }) => {
  const { agentPage, context, frame } = await share(page, browser, broker);
  const iframe = agentPage.locator('iframe[title="Visitor\'s screen"]');
  const sandbox = await iframe.getAttribute("sandbox");
  expect(sandbox).not.toBeNull();
  expect(sandbox).not.toContain("allow-scripts");

  // The visitor's page gains hostile markup: a script, an event handler, a
  // javascript: link. Each would mark the agent's page if it ran there.
  await page.evaluate(() => {
    const box = document.createElement("section");
    box.id = "hostile";
    box.innerHTML =
      '<p id="hostile-text">&lt;script&gt;alert(1)&lt;/script&gt; shown as text</p>' +
      '<img id="hostile-img" src="/nowhere.png" onerror="window.top.document.title=\'pwned\'">' +
      '<a id="hostile-link" href="javascript:window.top.document.title=\'pwned\'">link</a>';
    const script = document.createElement("script");
    script.textContent = "window.top.document.title = 'pwned'";
    box.append(script);
    document.querySelector("main").prepend(box);
  });
  await expect(frame.locator("#hostile-text")).toHaveText("<script>alert(1)</script> shown as text");
  await expect(frame.locator("#hostile-img")).toHaveCount(1);
  expect(await frame.locator("#hostile-img").getAttribute("onerror")).toBeNull();
  expect(await frame.locator("#hostile-link").getAttribute("href")).toBeNull();
  await expect(frame.locator("script")).toHaveCount(0);
  await expect(agentPage).toHaveTitle("Agent console — Agent Assist");
  // Nothing on the wire either: the visitor's browser never sent them.
  const captured = broker.captured().toString();
  expect(captured).not.toContain("onerror");
  expect(captured).not.toContain("javascript:");

  // The mirror takes no clicks or keys: a layer of the console covers it.
  const covered = await agentPage.evaluate(() => {
    const f = document.querySelector('iframe[title="Visitor\'s screen"]');
    const r = f.getBoundingClientRect();
    return document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2) !== f;
  });
  expect(covered).toBe(true);

  expect(agentPage.errors).toEqual([]);
  await context.close();
});

test("after End nothing more is sent: the visitor's socket closes and no other opens", async ({ page, browser, broker }) => {
  const sockets = [];
  page.on("websocket", (ws) => {
    const entry = { ws, closed: false };
    ws.on("close", () => (entry.closed = true));
    sockets.push(entry);
  });
  const { agentPage, context, c, frame } = await share(page, browser, broker);
  await page.getByLabel("Delivery note").fill("before the end");
  await expect(frame.locator("[name=note]")).toHaveValue("before the end");
  expect(sockets.length).toBe(1);

  await c.end.click();
  await expect(indicator(page)).toContainText("Dana ended the session.");
  await expect.poll(() => sockets.every((s) => s.closed)).toBe(true);
  // The outline of hidden fields goes with the session.
  await expect.poll(() => page.locator("[name=password]").evaluate((e) => getComputedStyle(e).outlineStyle)).not.toBe("dashed");

  await page.getByLabel("Delivery note").fill("after the end");
  await page.getByRole("button", { name: "Add to basket" }).first().click();
  // Two animation frames and the background-tab fallback's time: any batch
  // the page would have sent has been attempted by then.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300)))));
  expect(sockets.length).toBe(1);
  expect(broker.captured().includes("after the end")).toBe(false);
  expect(agentPage.errors).toEqual([]);
  await context.close();
});

test("an agent who reloads the console catches up at once with the visitor's current page", async ({ page, browser, broker }) => {
  const { agentPage, context, frame } = await share(page, browser, broker);
  await page.getByLabel("Delivery note").fill("typed before the reload");
  await page.getByRole("button", { name: "Add to basket" }).first().click();
  await expect(frame.locator("#basket")).toHaveText("Basket (1)");

  await agentPage.reload();
  const again = mirror(agentPage);
  await expect(again.locator("#basket")).toHaveText("Basket (1)");
  await expect(again.locator("[name=note]")).toHaveValue("typed before the reload");
  await page.getByRole("button", { name: "Add to basket" }).first().click();
  await expect(again.locator("#basket")).toHaveText("Basket (2)");
  expect(agentPage.errors).toEqual([]);
  await context.close();
});

for (const variant of [
  { name: "light", colorScheme: "light", viewport: { width: 1280, height: 800 } },
  { name: "dark", colorScheme: "dark", viewport: { width: 1280, height: 800 } },
  { name: "narrow", colorScheme: "light", viewport: { width: 390, height: 844 } },
]) {
  test(`co-browsing screenshots (${variant.name})`, async ({ page, browser, broker }) => {
    await page.emulateMedia({ colorScheme: variant.colorScheme });
    await page.setViewportSize(variant.viewport);
    const { agentPage, context, frame } = await share(page, browser, broker, variant);
    await page.getByLabel("Delivery note").fill("Ring twice please");
    await page.getByLabel("Password").fill("hunter2hunter2");
    await page.getByLabel("Card number").fill("4929 1804 2211 9999");
    await page.getByLabel("Password").scrollIntoViewIfNeeded();
    await page.mouse.move(300, 300);
    await expect(frame.locator("[name=note]")).toHaveValue("Ring twice please");
    await agentPage.screenshot({ path: path.join(SHOTS, `cobrowse-agent-${variant.name}.png`), fullPage: true });
    await page.screenshot({ path: path.join(SHOTS, `cobrowse-visitor-${variant.name}.png`) });

    await page.goto(broker.url + "/account.html");
    await expect(agentPage.getByText("The visitor is on a page that is not shared")).toBeVisible();
    await expect(indicator(page)).toContainText("This page is not shared with Dana");
    await agentPage.screenshot({ path: path.join(SHOTS, `cobrowse-agent-not-shared-${variant.name}.png`) });
    await page.screenshot({ path: path.join(SHOTS, `cobrowse-visitor-not-shared-${variant.name}.png`) });
    await context.close();
  });
}
