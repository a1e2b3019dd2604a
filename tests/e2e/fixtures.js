// Test fixtures: each test gets its own real broker (see broker.js).
import { test as base, expect } from "@playwright/test";
import { Broker } from "./broker.js";

export const test = base.extend({
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

/** Waits for the page's POST /v1/codes answer and returns its JSON. */
export async function codeResponse(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/v1/codes") && r.request().method() === "POST"),
    action(),
  ]);
  return { status: response.status(), body: await response.json() };
}
