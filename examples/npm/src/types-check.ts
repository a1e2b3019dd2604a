// Compiled with `tsc --noEmit` by `cargo xtask test`: the package's types
// must accept correct use and reject misuse.
import { AgentAssist, type AgentAssistConfig, type SessionCode } from "agent-assist";

const config: AgentAssistConfig = {
  siteKey: "demo",
  broker: "https://assist.example.com",
  locale: "fr",
  theme: "dark",
  strings: { cancel: "Plus tard", notices: ["Un", "Deux"], consentTitle: "{agent} ?" },
  onConsent: async ({ agentName }) => agentName.length > 0,
};

export async function start(): Promise<string> {
  const widget = await AgentAssist.init(config);
  widget.mountFooterLink("#support-link");
  widget.on("code.created", (detail: SessionCode) => console.log(detail.code, detail.expiresAt));
  widget.on("error", ({ code, message }) => console.warn(code, message));
  widget.on("session.updated", ({ state, agentName }) => console.log(state, agentName));
  widget.on("session.ended", ({ reason }) => {
    const r: "agent_ended" | "device_ended" | string = reason;
    console.log(r);
  });
  const { code } = await widget.createSessionCode();
  widget.cancelSessionCode();
  widget.destroy();
  return code;
}

// @ts-expect-error: siteKey is required.
export const missingKey: AgentAssistConfig = { broker: "https://x" };
// @ts-expect-error: only auto, light and dark are themes.
export const badTheme: AgentAssistConfig = { siteKey: "x", theme: "blue" };
export async function badEvent() {
  const widget = await AgentAssist.init(config);
  // @ts-expect-error: no such event.
  widget.on("code.create", () => {});
}
// @ts-expect-error: onConsent answers with a boolean.
export const badConsent: AgentAssistConfig = { siteKey: "x", onConsent: () => "yes" };
