/** Texts a site can replace; every one has a built-in English and French version. */
export interface AgentAssistStrings {
  link?: string;
  title?: string;
  /** The bullet points above the code. */
  notices?: string[];
  privacyIntro?: string;
  privacyLink?: string;
  codeLabel?: string;
  codeSpokenPrefix?: string;
  loading?: string;
  expiresIn?: string;
  expired?: string;
  newCode?: string;
  cancel?: string;
  close?: string;
  errorNetwork?: string;
  errorServer?: string;
  retry?: string;
  /** `{agent}` is replaced by the agent's name in the texts below. */
  consentTitle?: string;
  consentText?: string;
  allow?: string;
  deny?: string;
  consentError?: string;
  sharing?: string;
  end?: string;
  endedByAgent?: string;
  endedByYou?: string;
  ended?: string;
}

/** What `onConsent` is asked. */
export interface ConsentRequest {
  sessionId: string;
  agentName: string;
}

export interface AgentAssistConfig {
  /** The site's public key, from the broker's site config. */
  siteKey: string;
  /** Base URL of the broker. Default: the page's origin. */
  broker?: string;
  /** BCP 47 tag; `fr*` gives French, anything else English. Default: `navigator.language`. */
  locale?: string;
  /** Link to the site's privacy statement, shown in the modal. */
  privacyUrl?: string;
  /** Default `auto` (follows `prefers-color-scheme`). */
  theme?: "auto" | "light" | "dark";
  strings?: AgentAssistStrings;
  /** The site's own consent UI instead of ours: resolve `true` to allow. A throw or rejection denies. */
  onConsent?: (request: ConsentRequest) => boolean | Promise<boolean>;
}

export type SessionState = "pending" | "authorizing" | "active" | "ended";
export type EndReason =
  | "pending_timeout"
  | "authorizing_timeout"
  | "device_cancelled"
  | "consent_denied"
  | "device_ended"
  | "agent_ended";

export interface SessionCode {
  /** Six digits, e.g. `"042917"`. */
  code: string;
  sessionId: string;
  /** Expiry, milliseconds since the Unix epoch (broker clock). */
  expiresAt: number;
  /** Seconds until expiry when the code was issued. */
  expiresIn: number;
}

export interface AgentAssistErrorDetail {
  /** Stable code: `network`, `timeout`, `unknown_site`, `origin_not_allowed`, … */
  code: string;
  message: string;
}

export interface AgentAssistEvents {
  "code.created": SessionCode;
  "code.expired": { sessionId: string };
  "code.cancelled": { sessionId: string };
  "session.updated": { sessionId: string; state: SessionState; agentName: string };
  "session.ended": { sessionId: string; reason: EndReason };
  error: AgentAssistErrorDetail;
}

/** An error thrown or rejected by the SDK; `code` is stable. */
export interface AgentAssistError extends Error {
  code: string;
}

export interface AgentAssistWidget {
  /** Adds the footer link to `target` (element or selector); default `[data-agent-assist]`, else the last `<footer>`, else `<body>`. */
  mountFooterLink(target?: Element | string): void;
  /** Opens the share-screen modal and requests a code. */
  open(): void;
  /** Closes the modal and withdraws the code at the broker. */
  close(): void;
  /** For custom UIs: the live code, or a new one. Concurrent calls share one request. */
  createSessionCode(): Promise<SessionCode>;
  /** For custom UIs: withdraws the live code. */
  cancelSessionCode(): void;
  on<K extends keyof AgentAssistEvents>(event: K, listener: (detail: AgentAssistEvents[K]) => void): void;
  off<K extends keyof AgentAssistEvents>(event: K, listener: (detail: AgentAssistEvents[K]) => void): void;
  /** Removes every node and listener the widget added and withdraws its code. */
  destroy(): void;
}

export declare const AgentAssist: {
  /** Loads the wasm (once), checks the config and creates a widget. Rejects with an `AgentAssistError` naming the bad field. */
  init(config: AgentAssistConfig): Promise<AgentAssistWidget>;
};

export default AgentAssist;
