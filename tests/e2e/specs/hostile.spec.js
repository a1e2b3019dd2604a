// Hostile text in the widget's config: every string a site can set, made
// of HTML and script, is shown as text; no element is created from it, no
// script runs, and a `javascript:` privacy link is refused.
import { test, expect, codeResponse } from "../fixtures.js";

const HOSTILE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;

test("config strings with HTML in them are shown as text, and nothing runs", async ({ page, broker }) => {
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(broker.url + "/support.html");
  await page.evaluate(async (hostile) => {
    const strings = {};
    for (const key of ["title", "privacyIntro", "privacyLink", "cancel", "close", "codeLabel", "expiresIn"]) {
      strings[key] = `${key} ${hostile}`;
    }
    strings.notices = [`notice ${hostile}`];
    window.__w = await window.AgentAssist.init({
      siteKey: "demo",
      privacyUrl: "/privacy.html",
      strings,
    });
  }, HOSTILE);
  await codeResponse(page, () => page.evaluate(() => window.__w.open()));
  const dialog = page.getByRole("dialog", { name: `title ${HOSTILE}` });
  await expect(dialog).toBeVisible();
  for (const text of [`notice ${HOSTILE}`, `codeLabel ${HOSTILE}`]) {
    await expect(dialog.getByText(text, { exact: true })).toBeVisible();
  }
  // The intro and the privacy link share one sentence.
  await expect(dialog.getByText(`privacyIntro ${HOSTILE}`)).toBeVisible();
  await expect(dialog.getByRole("link", { name: `privacyLink ${HOSTILE}` })).toBeVisible();
  await expect(dialog.getByRole("button", { name: `cancel ${HOSTILE}` })).toBeVisible();
  // No element came from the strings: no image anywhere, and no script
  // beyond the page's own two, shadow roots included.
  const made = await page.evaluate(() => {
    const count = (root, selector) => {
      let n = root.querySelectorAll(selector).length;
      for (const el of root.querySelectorAll("*")) if (el.shadowRoot) n += count(el.shadowRoot, selector);
      return n;
    };
    return { images: count(document, "img"), scripts: count(document, "script"), pwned: window.__pwned ?? null };
  });
  expect(made).toEqual({ images: 0, scripts: 2, pwned: null });
  expect(errors).toEqual([]);
});

test("a javascript: privacy link is refused with the field's name, and nothing is created", async ({ page, broker }) => {
  await page.goto(broker.url + "/support.html");
  const outcome = await page.evaluate(async () => {
    const before = document.querySelectorAll("agent-assist-widget").length;
    try {
      await window.AgentAssist.init({ siteKey: "demo", privacyUrl: "javascript:window.__pwned=1" });
      return { refused: false };
    } catch (e) {
      return {
        refused: true,
        message: String(e.message),
        created: document.querySelectorAll("agent-assist-widget").length - before,
      };
    }
  });
  expect(outcome.refused).toBe(true);
  expect(outcome.message).toContain("privacyUrl");
  expect(outcome.created).toBe(0);
});
