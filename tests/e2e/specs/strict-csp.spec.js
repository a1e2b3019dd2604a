// The widget under a CSP without 'unsafe-inline' (examples/strict-csp).
import { test, expect, widget, codeResponse } from "../fixtures.js";

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
  expect(await page.evaluate(() => window.__violations)).toEqual([]);
  expect(errors).toEqual([]);
});
