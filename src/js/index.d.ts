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
  /** The session indicator while the agent sees the page. */
  sharing?: string;
  /** The session indicator on a page the site does not share with agents. */
  notShared?: string;
  errorBusy?: string;
  end?: string;
  endedByAgent?: string;
  endedByYou?: string;
  ended?: string;
  /** The identity form (`auth: "form"` / `"optional-form"`): the line above the fields. */
  formIntro?: string;
  /** The form's field labels. */
  nameLabel?: string;
  emailLabel?: string;
  /** The form's button that asks for the code with the name and email. */
  submit?: string;
  /** `auth: "optional-form"` only: asks for the code without them. */
  guest?: string;
  /** Shown under a field at fault, and read out by screen readers. */
  nameRequired?: string;
  emailRequired?: string;
  emailInvalid?: string;
  /** In the modal when the server refuses the identity (`identity_required`, `invalid_identity`). */
  errorIdentity?: string;
}

/**
 * How the site identifies its visitors; the broker enforces the same mode.
 * - `visitor`: nothing asked; the agent sees "Web User - MM/DD HH:MM".
 * - `code`: the site calls `identify()`; the link stays hidden until it does.
 * - `form`: name and email are asked, required, before the code is made.
 * - `optional-form`: the same form, with "Continue as guest".
 */
export type AuthMode = "visitor" | "code" | "form" | "optional-form";

/**
 * Where the anonymous visitor id is kept: `localStorage` (the same id in
 * every tab and visit), `sessionStorage` (this tab), or memory (this page).
 * Blocked storage falls back to memory. Nothing is written before the
 * visitor's first code request.
 */
export type VisitorStorage = "local" | "session" | "memory";

/** The site's logged-in user, for `identify()`. */
export interface AgentAssistIdentity {
  /** The user's id on the site. Required. */
  userId: string;
  name?: string;
  email?: string;
  /** Extra facts for the agent (plan, account number…): at most 20 entries, keys up to 40 and values up to 200 characters. */
  customData?: Record<string, string>;
  /**
   * Made by the site's server, never in the browser: an HS256 JWT signed
   * with the site secret over `sub` (= userId), `name`, `email`, `custom`
   * (= customData) and `exp` (at most 24 hours away). Required.
   */
  token: string;
}

/** What a site's own form asked the visitor (`createSessionCode`). */
export interface VisitorDetails {
  name?: string;
  email?: string;
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
  /** Default `visitor`. Must match the site's mode at the broker. */
  auth?: AuthMode;
  /** Default `local`. */
  visitorStorage?: VisitorStorage;
  strings?: AgentAssistStrings;
  /** The site's own consent UI instead of ours: resolve `true` to allow. A throw or rejection denies. */
  onConsent?: (request: ConsentRequest) => boolean | Promise<boolean>;
  /**
   * Co-browsing: CSS selectors of elements the agent must not see (with
   * everything inside). Password fields, card fields and elements marked
   * `data-agent-assist-redact` are always hidden. The agent sees a blank
   * box of the same size instead.
   */
  redact?: string[];
  /** Co-browsing with `privateByDefault`: the areas the agent may see. */
  unredact?: string[];
  /**
   * Co-browsing: hide every text, form field and image from the agent
   * except inside elements marked `data-agent-assist-unredact` or matched
   * by `unredact`. Default `false`.
   */
  privateByDefault?: boolean;
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
  /** Stable code: `network`, `timeout`, `unknown_site`, `origin_not_allowed`, `identity_required`, `invalid_identity`, … */
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

/**
 * An error thrown or rejected by the SDK; `code` is stable: `config` (bad
 * `init` config), `invalid_argument` (bad `identify` or `createSessionCode`
 * argument; the message names the field), `identity_required` (`auth:
 * "code"` and no `identify()` yet), `destroyed`, or a server error code.
 */
export interface AgentAssistError extends Error {
  code: string;
}

export interface AgentAssistWidget {
  /**
   * Adds the footer link to `target` (element or selector); default `[data-agent-assist]`, else the last `<footer>`, else `<body>`.
   * When the page replaces that place (a re-rendered footer), the link moves into the new one found the same way; a link the
   * page removed itself stays removed until this is called again. Calling it again rebuilds the link and shows again what was open.
   */
  mountFooterLink(target?: Element | string): void;
  /** Opens the share-screen modal and requests a code (after the form, with `auth: "form"` / `"optional-form"`). Throws `identity_required` with `auth: "code"` before `identify()`. */
  open(): void;
  /** Closes the modal and withdraws the code at the broker. */
  close(): void;
  /** For custom UIs: the live code, or a new one, with what your own form asked. Concurrent calls share one request. */
  createSessionCode(visitor?: VisitorDetails): Promise<SessionCode>;
  /** For custom UIs: withdraws the live code. */
  cancelSessionCode(): void;
  on<K extends keyof AgentAssistEvents>(event: K, listener: (detail: AgentAssistEvents[K]) => void): void;
  off<K extends keyof AgentAssistEvents>(event: K, listener: (detail: AgentAssistEvents[K]) => void): void;
  /**
   * Tells the widget who the logged-in user is; sent with every code request.
   * With `auth: "code"` the footer link appears once this is called. Calling
   * it again replaces the identity. The identity is checked before anything
   * is sent: once the rest of the widget has loaded, by a throw of
   * `invalid_argument` naming the field; before that (it loads when the
   * visitor points at, focuses or clicks the link), by the same error on the
   * console and as an `error` event, and the identity is not used.
   */
  identify(identity: AgentAssistIdentity): void;
  /** Forgets the visitor id and identity on this browser (logout, shared devices) and withdraws a code on display. */
  reset(): void;
  /** Removes every node and listener the widget added and withdraws its code. */
  destroy(): void;
}

export declare const AgentAssist: {
  /** Loads the boot wasm (once), checks the config and creates a widget. Rejects with an `AgentAssistError` naming the bad field. The rest of the widget loads on demand. */
  init(config: AgentAssistConfig): Promise<AgentAssistWidget>;
};

export default AgentAssist;
