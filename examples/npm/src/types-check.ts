// Compiled with `tsc --noEmit` by `cargo xtask test`: the package's types
// must accept correct use and reject misuse.
import {
  AgentAssist,
  type AgentAssistConfig,
  type AgentAssistIdentity,
  type SessionCode,
} from "agent-assist";

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

// Identity: the four auth modes, where the visitor id is kept, identify() and reset().
export const codeSite: AgentAssistConfig = { siteKey: "shop", auth: "code", visitorStorage: "session" };
export const formSite: AgentAssistConfig = {
  siteKey: "shop",
  auth: "optional-form",
  visitorStorage: "memory",
  strings: { nameLabel: "Nom complet", guest: "Plus tard", errorIdentity: "Rechargez la page." },
};
export async function logIn(token: string): Promise<void> {
  const widget = await AgentAssist.init(codeSite);
  widget.mountFooterLink();
  const user: AgentAssistIdentity = {
    userId: "u-42",
    name: "Jo Visitor",
    email: "jo@example.com",
    customData: { plan: "pro" },
    token,
  };
  widget.identify(user);
  widget.identify({ userId: "u-42", token });
  widget.on("error", ({ code }) => {
    if (code === "invalid_identity") console.warn("mint a new token");
  });
  await widget.createSessionCode({ name: "Jo", email: "jo@example.com" });
  widget.reset();
}

// @ts-expect-error: only the four modes exist.
export const badAuth: AgentAssistConfig = { siteKey: "x", auth: "sso" };
// @ts-expect-error: visitor ids are kept in local or session storage, or memory.
export const badStorage: AgentAssistConfig = { siteKey: "x", visitorStorage: "cookie" };
// @ts-expect-error: identify needs the token the site's server made.
export const unsigned: AgentAssistIdentity = { userId: "u-42" };
// @ts-expect-error: custom data values are strings.
export const numbers: AgentAssistIdentity = { userId: "u-42", token: "t", customData: { visits: 3 } };
export async function badIdentify() {
  const widget = await AgentAssist.init(config);
  // @ts-expect-error: the field is userId.
  widget.identify({ userID: "u-42", token: "t" });
  // @ts-expect-error: reset takes nothing.
  widget.reset(true);
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
