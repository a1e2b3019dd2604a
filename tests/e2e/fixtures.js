// Test fixtures: each test gets its own real broker (see broker.js).
import { test as base, expect } from "@playwright/test";
import { Broker } from "./broker.js";

export const test = base.extend({
  // Every test fails if its page throws or rejects uncaught: the widget must
  // never throw into the host page. Other pages a test opens can report into
  // `page.errors` too.
  pageErrors: [
    async ({ page }, use) => {
      page.errors = [];
      page.on("pageerror", (err) => page.errors.push(String(err)));
      await use(page.errors);
      expect(page.errors, "uncaught errors on the page").toEqual([]);
    },
    { auto: true },
  ],
  // One broker per test: tests stop and restart it, and each gets a clean store.
  broker: async ({}, use, testInfo) => {
    const broker = await Broker.start();
    await use(broker);
    await broker.stop();
    if (testInfo.status !== testInfo.expectedStatus) {
      await testInfo.attach("broker.log", { body: broker.log, contentType: "text/plain" });
    }
    broker.cleanup();
  },
});

export { expect };

/** An agent's call to the broker, as the console makes it. */
export async function agentApi(broker, token, method, pathname, body) {
  const res = await fetch(broker.url + pathname, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

/** The widget's locators, reached through its open shadow root. */
export function widget(page) {
  return {
    link: page.getByRole("button", { name: "Agent Assist" }),
    dialog: page.getByRole("dialog"),
    code: page.locator("agent-assist-widget .code"),
    time: page.locator("agent-assist-widget .time"),
    cancel: page.getByRole("dialog").getByRole("button", { name: "Cancel" }),
    close: page.getByRole("dialog").getByRole("button", { name: "Close" }),
  };
}

/**
 * Resolves once the script tag's widget has started: the link is drawn by
 * the script at once, the boot module (config check, the modal's frame)
 * arrives when the page is idle. Tests that stop or stall the broker before
 * a click wait for it, as their visitor's page has long been idle.
 */
export async function booted(page) {
  expect(await page.evaluate(async () => (await window.AgentAssist.ready) !== null)).toBe(true);
}

/**
 * Runs `during` with the broker stalled (SIGSTOP, not a mock: nothing it
 * serves arrives, the requests wait), then lets it go on.
 */
export async function whileStalled(broker, during) {
  broker.proc.kill("SIGSTOP");
  try {
    return await during();
  } finally {
    broker.proc.kill("SIGCONT");
  }
}

/** Waits for the page's POST /v1/codes answer and returns its JSON. */
export async function codeResponse(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/codes") && r.request().method() === "POST"),
    action(),
  ]);
  return { status: response.status(), body: await response.json() };
}

/** The agent console's locators (www/agent.html), by role and name. */
export function agentConsole(page) {
  const group = page.getByRole("group", { name: "Support code" });
  return {
    token: page.getByLabel("Agent token"),
    signIn: page.getByRole("button", { name: "Sign in" }),
    signOut: page.getByRole("button", { name: "Sign out" }),
    alert: page.getByRole("alert"),
    // The session's state (the mirror of the visitor's screen has its own).
    status: page.locator("[role=status]:not(.mirror-status)"),
    mirrorStatus: page.locator(".mirror-status"),
    group,
    digits: group.getByRole("textbox"),
    digit: (n) => group.getByRole("textbox", { name: `Digit ${n} of 6`, exact: true }),
    connect: page.getByRole("button", { name: "Connect" }),
    visitor: page.locator(".session .visitor-name"),
    end: page.getByRole("button", { name: "End session" }),
    newCode: page.getByRole("button", { name: "New code" }),
  };
}
