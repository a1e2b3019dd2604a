// examples/custom-ui: a site's own UI on createSessionCode(), cancelSessionCode()
// and the events, without the built-in modal.
import { test, expect, codeResponse } from "../fixtures.js";

test("a custom UI gets a live code, and its Cancel withdraws it at the broker", async ({ page, broker }) => {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(broker.url + "/examples/custom-ui/");
  await expect(page.getByRole("button", { name: "Agent Assist" })).toHaveCount(0);

  const { body } = await codeResponse(page, () => page.getByRole("button", { name: "Show my support code" }).click());
  await expect(page.locator("#code")).toHaveText(`${body.code.slice(0, 3)} ${body.code.slice(3)}`);
  await expect(page.locator("agent-assist-widget dialog")).toHaveCount(0);
  const live = await broker.api("GET", `/v1/sessions/${body.session_id}`, { token: body.device_token });
  expect(live.body.state).toBe("pending");

  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByRole("alert")).toHaveText("Code withdrawn.");
  await expect.poll(async () => (await broker.api("GET", `/v1/sessions/${body.session_id}`, { token: body.device_token })).body.end_reason).toBe("device_cancelled");
  expect(errors).toEqual([]);
});
