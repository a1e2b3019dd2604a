import { AgentAssist } from "agent-assist";

// The broker that issues codes; `cargo xtask demo` runs one here. Its site
// config must list this page's origin under `allowed_origins`.
const broker = import.meta.env.VITE_AGENT_ASSIST_BROKER ?? "http://127.0.0.1:8080";

const widget = await AgentAssist.init({ siteKey: "demo", broker, privacyUrl: "/privacy.html" });
widget.mountFooterLink("#support-link");
widget.on("code.created", ({ code, expiresAt }) => {
  console.info("support code", code, "valid until", new Date(expiresAt).toLocaleTimeString());
});
