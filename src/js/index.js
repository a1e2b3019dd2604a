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

export const AgentAssist = {
  /** Checks the config and creates a widget (see index.d.ts). */
  async init(config) {
    await load();
    return Widget.init(config);
  },
};

export default AgentAssist;
