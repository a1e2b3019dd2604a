// Entry point of the `agent-assist` npm package.
//
//   import { AgentAssist } from "agent-assist";
//   const widget = await AgentAssist.init({ siteKey: "…", broker: "https://…" });
//   widget.mountFooterLink();
//
// Importing this module does nothing: the boot wasm (the footer link and the
// config check) is fetched and compiled on the first `init()`, the rest on
// demand, and nothing touches `document` before that, so it is safe to
// import during server-side rendering.
import initWasm, { Boot } from "./agent_assist.js";

let loading = null;

function load() {
  if (typeof document === "undefined") {
    const err = new Error("Agent Assist needs a browser page (no document here)");
    err.code = "no_document";
    return Promise.reject(err);
  }
  if (!loading) {
    loading = initWasm({ module_or_path: new URL("./agent_assist_bg.wasm", import.meta.url) });
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

// A module imported once, on demand (bundlers make it a separate chunk); a
// failed import is tried again next time.
function lazy(importer) {
  let pending = null;
  return () => {
    if (!pending) {
      pending = importer();
      pending.catch(() => {
        pending = null;
      });
    }
    return pending;
  };
}

// The widget module (everything after the click): imported when the visitor
// points at the link, focuses it or clicks it, or once the page is idle in a tab that
// follows a session. The co-browsing module: once a visitor allows a
// session. Page load pays for neither.
// The glue and the wasm are fetched side by side, not one after the other.
const loadWidget = lazy(() => {
  const wasm = fetch(new URL("./widget/agent_assist_widget_bg.wasm", import.meta.url));
  // Reported through the import's promise, never as an unhandled rejection.
  wasm.catch(() => {});
  return import("./widget/agent_assist_widget.js").then(async (m) => {
    await m.default({ module_or_path: wasm });
    return m.AgentAssist;
  });
});
const loadCobrowse = lazy(() =>
  import("./cobrowse/agent_assist_cobrowse.js").then(async (m) => {
    await m.default();
    return m;
  }),
);

// facade.js goes here (`cargo xtask build`): makeWidget(Boot, config, …).
// @facade

export const AgentAssist = {
  /** Checks the config and creates a widget (see index.d.ts). */
  async init(config) {
    await load();
    return makeWidget(Boot, config, loadWidget, loadCobrowse);
  },
};

export default AgentAssist;
