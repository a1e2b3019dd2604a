// Entry point of the `agent-assist` npm package.
//
//   import { AgentAssist } from "agent-assist";
//   const widget = await AgentAssist.init({ siteKey: "…", broker: "https://…" });
//   widget.mountFooterLink();
//
// Importing this module does nothing: the wasm is fetched and compiled on the
// first `init()`, and nothing touches `document` before that, so it is safe
// to import during server-side rendering.
import initWasm, { AgentAssist as Widget } from "./agent_assist.js";

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

let cobrowse = null;

// The co-browsing module: imported only once a visitor allows a session
// (bundlers make it a separate chunk), so page load never pays for it.
function loadCobrowse() {
  if (!cobrowse) {
    cobrowse = import("./cobrowse/agent_assist_cobrowse.js").then(async (m) => {
      await m.default();
      return m;
    });
    cobrowse.catch(() => {
      cobrowse = null;
    });
  }
  return cobrowse;
}

export const AgentAssist = {
  /** Checks the config and creates a widget (see index.d.ts). */
  async init(config) {
    await load();
    return Widget.init(config, loadCobrowse);
  },
};

export default AgentAssist;
