// Script-tag loader, appended to the boot module's wasm-bindgen `no-modules`
// glue and facade.js by `cargo xtask build`. It reads the config from the
// tag's data-* attributes and draws the footer link at once, itself; the
// boot module's .wasm (next to this script: the config check, the modal's
// frame) is fetched once the page has loaded and is idle, or at the
// visitor's first sign of intent, and takes the link over in place. The
// rest of the widget (widget/) and co-browsing (cobrowse/) are ES modules
// next to it, imported only when the boot module asks for them.
//
//   <script src=".../agent-assist.js" data-site-key="…" defer></script>
//
// Attributes: data-site-key (required for auto-mount), data-broker (default:
// this script's origin), data-locale, data-privacy-url, data-theme,
// data-auth ("visitor", "code", "form" or "optional-form"),
// data-visitor-storage ("local", "session" or "memory"),
// data-link-label, data-mount (CSS selector, or "none" for no footer link),
// data-redact / data-unredact (a CSS selector list: what agents never see /
// may see), data-private-by-default ("true": agents see only what
// data-unredact or data-agent-assist-unredact allows).
//
// The page gets `window.AgentAssist`: `init(config)` resolves to a new
// widget; `ready` resolves to the auto-mounted widget once its boot module
// has checked the config (or null: the link drawn early goes). A site with
// data-auth="code" identifies its user once it knows them:
//   AgentAssist.ready.then(function (w) { w.identify({ userId: …, token: … }); });
var script = document.currentScript;
var base = (script && script.src) || location.href;
var data = (script && script.dataset) || {};
var loaded = null;

function load() {
  if (!loaded) {
    loaded = wasm_bindgen({ module_or_path: new URL("agent-assist_bg.wasm", base) });
    // A failed fetch is tried again by the next init().
    loaded.catch(function () { loaded = null; });
  }
  return loaded.then(function () { return wasm_bindgen.Boot; });
}

// An ES module next to this script, fetched and instantiated once; a
// failed fetch is tried again next time. Its glue and its wasm are fetched
// side by side, not one after the other.
function lazy(dir, name, then) {
  var pending = null;
  return function () {
    if (!pending) {
      var wasm = fetch(new URL(dir + "/" + name + "_bg.wasm", base));
      // Its failure is reported through `pending` (or not at all if the glue
      // failed first); never as an unhandled rejection on the page.
      wasm.catch(function () {});
      pending = import(new URL(dir + "/" + name + ".js", base).href).then(function (m) {
        return m.default({ module_or_path: wasm }).then(function () {
          return then(m);
        });
      });
      pending.catch(function () { pending = null; });
    }
    return pending;
  };
}

// The widget module (pkg/dist/widget/): fetched when the visitor points at
// the link, focuses it or clicks it, or once the page is idle in a tab that follows a
// session. The co-browsing module (pkg/dist/cobrowse/): once a visitor
// allows a session. Neither weighs on page load.
var loadWidget = lazy("widget", "agent_assist_widget", function (m) { return m.AgentAssist; });
var loadCobrowse = lazy("cobrowse", "agent_assist_cobrowse", function (m) { return m; });

function init(config) {
  return load().then(function (Boot) { return makeWidget(Boot, config, loadWidget, loadCobrowse); });
}

function tagConfig() {
  var config = { siteKey: data.siteKey, broker: data.broker || new URL(base).origin };
  if (data.locale) config.locale = data.locale;
  if (data.privacyUrl) config.privacyUrl = data.privacyUrl;
  if (data.theme) config.theme = data.theme;
  if (data.auth) config.auth = data.auth;
  if (data.visitorStorage) config.visitorStorage = data.visitorStorage;
  if (data.linkLabel) config.strings = { link: data.linkLabel };
  if (data.redact) config.redact = [data.redact];
  if (data.unredact) config.unredact = [data.unredact];
  if (data.privateByDefault) config.privateByDefault = data.privateByDefault === "true";
  return config;
}

var WAKE = ["pointerenter", "focus", "click"];

// The footer link, drawn by this script at once with the same markup as the
// boot module's: the page pays a few DOM calls for it at load, and the boot
// module (its wasm: the config check, the modal's frame) is fetched once
// the page has loaded and is idle, or at the visitor's first sign of intent,
// whichever comes first; it then takes this link over in place. Not drawn
// here (the boot module draws it once it is here) where the link starts
// hidden (`data-auth="code"`), where the site mounts none, where the
// target is not in the page, or without constructable stylesheets.
function drawLink(config) {
  if (data.mount === "none" || config.auth === "code") return null;
  if (typeof CSSStyleSheet !== "function" || !("adoptedStyleSheets" in Document.prototype)) return null;
  var parent;
  try {
    parent = data.mount ? document.querySelector(data.mount) : place(null) || document.body;
  } catch (e) {
    return null; // Not a selector: the boot module says so.
  }
  if (!parent) return null;
  var host = document.createElement("agent-assist-widget");
  if (config.theme === "light" || config.theme === "dark") host.setAttribute("data-theme", config.theme);
  var root = host.attachShadow({ mode: "open" });
  var sheet = new CSSStyleSheet();
  sheet.replaceSync(LINK_CSS);
  root.adoptedStyleSheets = [sheet];
  var button = document.createElement("button");
  button.className = "link";
  button.type = "button";
  button.setAttribute("aria-haspopup", "dialog");
  button.setAttribute("part", "link");
  button.textContent = data.linkLabel || "Agent Assist";
  root.appendChild(button);
  parent.appendChild(host);
  return { host: host, button: button, intent: false, clicked: false };
}

// Resolves once the page is parsed (at once for a deferred script).
function parsed() {
  return new Promise(function (go) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go, { once: true });
    else go();
  });
}

function autoMount() {
  if (!data.siteKey) return Promise.resolve(null);
  var config = tagConfig();
  var early = null;
  return parsed()
    .then(function () {
      early = drawLink(config);
      if (!early) return;
      return new Promise(function (go) {
        function wake(e) {
          if (e.type === "click") {
            early.clicked = true;
            early.button.setAttribute("aria-busy", "true");
          }
          early.intent = true;
          // A click may be coming: the widget module is fetched beside the
          // boot module (its failure is reported when it is used).
          loadWidget().catch(function () {});
          go();
        }
        WAKE.forEach(function (t) { early.button.addEventListener(t, wake); });
        early.off = function () {
          WAKE.forEach(function (t) { early.button.removeEventListener(t, wake); });
        };
        if (document.readyState === "complete") whenIdle(go);
        else addEventListener("load", function () { whenIdle(go); }, { once: true });
      });
    })
    .then(load)
    .then(function (Boot) {
      // Until here a click or intent on the early link is noted; from here
      // the boot module answers.
      if (early) early.off();
      var widget = makeWidget(Boot, config, loadWidget, loadCobrowse, early);
      if (data.mount !== "none") widget.mountFooterLink(data.mount || undefined);
      return widget;
    })
    .catch(function (err) {
      // A bad config (or no boot module): the link drawn early goes.
      if (early) early.host.remove();
      throw err;
    });
}

var ready = autoMount().then(
  function (widget) {
    window.dispatchEvent(new CustomEvent("agent-assist:ready", { detail: widget }));
    return widget;
  },
  function (err) {
    // A broken embed must not break the host page: report, never throw.
    console.error("Agent Assist could not start:", err);
    return null;
  }
);

window.AgentAssist = { init: init, ready: ready };
