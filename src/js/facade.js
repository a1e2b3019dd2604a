// The widget object a page gets from `AgentAssist.init`: the boot module
// (config check, footer link, the modal's frame) until the widget module is
// here, then the widget module. Shared by the script-tag bundle and the npm entry, which
// `cargo xtask build` puts it into.
//
// The widget module is fetched on the visitor's first sign of intent (the
// pointer over the link, focus on it, a click, `open()`,
// `createSessionCode()`), or once the page is idle in a tab that follows a session. On
// arrival it takes over the boot module's host element, link and open modal,
// the page's listeners and its `identify()` user; every call is forwarded from then
// on. Nothing here throws into the page but what the page's own calls
// throw, and no promise rejects unless the page holds it.
//
// `early`: the link the script tag drew before the boot module was here
// (loader.js: `{ host, intent, clicked }`), which the boot module takes
// over; a click on it then opens the modal, and a pointer over it or focus
// on it fetches the widget module, as they would have.
function makeWidget(Boot, config, loadWidget, loadCobrowse, early) {
  var boot = new Boot(config, clicked, arrive, LINK_CSS);
  if (early) {
    try {
      boot.adopt(early.host);
    } catch (e) {
      boot.free();
      throw e;
    }
  }
  var full = null;
  var arriving = null;
  var destroyed = false;
  var openOnArrival = false;
  var listeners = [];
  var identity;
  var watcher = null;
  // True while the boot module draws (see `guard`).
  var drawing = false;

  function clicked() {
    try {
      api.open();
    } catch (e) {
      // The link is hidden whenever open() would refuse; nothing to tell.
    }
  }

  function live() {
    if (destroyed) throw Boot.error(true);
    return boot;
  }

  // Calls the page's listeners of `event`; one that throws does not stop
  // the others (as the widget module's own events do).
  function emit(event, detail) {
    listeners.forEach(function (l) {
      if (l[0] !== event) return;
      try {
        l[1](detail);
      } catch (e) {
        console.error("Agent Assist: an event listener threw", e);
      }
    });
  }

  // Resolves to the widget module's widget, or null if it could not be
  // fetched (never rejects).
  function arrive() {
    if (full) return Promise.resolve(full);
    if (destroyed) return Promise.resolve(null);
    if (!arriving) {
      arriving = Promise.resolve()
        .then(loadWidget)
        .then(adopt, function () {
          arriving = null;
          failed();
          return null;
        });
    }
    return arriving;
  }

  function adopt(Widget) {
    if (destroyed) return null;
    // A modal still open here is for a click the widget module now answers;
    // one showing an error nobody retried is closed first.
    if (!openOnArrival) drawn(function () { boot.dismiss(); });
    var host = boot.handOver();
    full = Widget.init(config, loadCobrowse, host);
    boot.free();
    boot = null;
    var waiting = listeners;
    listeners = [];
    waiting.forEach(function (l) { full.on(l[0], l[1]); });
    if (identity !== undefined) {
      // Checked now, by the widget module, before anything is sent.
      try {
        full.identify(identity);
      } catch (e) {
        console.error(e);
        waiting.forEach(function (l) {
          if (l[0] === "error") l[1]({ code: e.code, message: e.message });
        });
      }
    }
    if (openOnArrival) {
      openOnArrival = false;
      try {
        full.open();
      } catch (e) {
        console.error(e);
      }
    }
    return full;
  }

  // The widget module could not be fetched: a visitor waiting for it sees
  // the "couldn't reach" message with "Try again" in the modal, and the page
  // gets an `error` event; the next attempt fetches it again.
  function failed() {
    if (!boot) return;
    boot.busy(false);
    if (!openOnArrival) return;
    openOnArrival = false;
    emit("error", drawn(function () { return boot.fail(api.open); }));
  }

  // Runs `f`, which calls the boot module, marked as drawing.
  function drawn(f) {
    drawing = true;
    try {
      return f();
    } finally {
      drawing = false;
    }
  }

  function mount(target) {
    if (full) full.mountFooterLink(target);
    else live().mount(target);
    follow(target, place(target) || document.body);
  }

  // The link stays where the site put it when the page re-renders that
  // place (a single-page app replacing its footer): once the element it
  // went into leaves the page, it moves into the one that took its place,
  // found the same way (the selector; or [data-agent-assist], else the last
  // footer). A link the page removed itself, from a place still there,
  // stays removed until `mountFooterLink()`. The check on each change of
  // the page is one property read.
  function follow(target, parent) {
    if (watcher) watcher.disconnect();
    watcher = new MutationObserver(function () {
      if (parent.isConnected || destroyed) return;
      if (!place(target)) return;
      try {
        api.mountFooterLink(target);
      } catch (e) {
        // Not there yet (or a destroyed widget): the next change tries again.
      }
    });
    watcher.observe(document, { childList: true, subtree: true });
  }

  var api = {
    mountFooterLink: mount,
    open: function () {
      if (full) return full.open();
      live().checkOpen();
      // The modal answers the click at once; the widget module takes it
      // over, open, when it arrives.
      boot.pending(api.close);
      boot.busy(true);
      openOnArrival = true;
      arrive();
    },
    close: function () {
      if (full) return full.close();
      live().busy(false);
      boot.dismiss();
      openOnArrival = false;
    },
    createSessionCode: function (visitor) {
      if (full) return full.createSessionCode(visitor);
      if (destroyed) return Promise.reject(Boot.error(true));
      return arrive().then(function (w) {
        if (!w) throw Boot.error(false);
        return w.createSessionCode(visitor);
      });
    },
    cancelSessionCode: function () {
      if (full) return full.cancelSessionCode();
      live();
    },
    identify: function (user) {
      if (full) return full.identify(user);
      live().identified(true);
      identity = user;
    },
    reset: function () {
      if (full) return full.reset();
      live().forget();
      boot.identified(false);
      identity = undefined;
    },
    on: function (event, fn) {
      if (full) return full.on(event, fn);
      live();
      Boot.checkEvent(event);
      if (!listeners.some(function (l) { return l[0] === event && l[1] === fn; })) listeners.push([event, fn]);
    },
    off: function (event, fn) {
      if (full) return full.off(event, fn);
      live();
      Boot.checkEvent(event);
      listeners = listeners.filter(function (l) { return !(l[0] === event && l[1] === fn); });
    },
    destroy: function () {
      if (watcher) watcher.disconnect();
      if (full) full.destroy();
      else if (boot) boot.free();
      boot = null;
      destroyed = true;
      listeners = [];
    },
  };
  // The boot module cannot be re-entered, and it runs page code: opening
  // or closing its modal moves focus, which runs the page's focus
  // listeners there and then. A page call made from one of those waits
  // until the boot module is done (a microtask later); what it would throw
  // goes to the console, as its caller has returned. The widget module
  // does the same for itself.
  Object.keys(api).forEach(function (name) {
    var call = api[name];
    api[name] = function () {
      var args = arguments;
      if (drawing) {
        var later = Promise.resolve().then(function () {
          return api[name].apply(null, args);
        });
        if (name === "createSessionCode") return later;
        later.catch(function (e) {
          console.error(e);
        });
        return;
      }
      if (full) return call.apply(null, args);
      return drawn(function () {
        return call.apply(null, args);
      });
    };
  });
  if (early && early.clicked) clicked();
  else if (early && early.intent) arrive();
  // A tab that follows a session (a reload, another page of the site)
  // fetches the widget module to pick it up. Finding out reads
  // sessionStorage, whose first read in a page is a synchronous trip to the
  // browser, so it is asked once the link is drawn and the page is idle
  // (within a second), not on the way to the link.
  whenIdle(function () {
    if (boot && !destroyed && boot.resumes()) arrive();
  });
  return api;
}

// The host's variables and the footer link's style (src/ui/link.css,
// minified), put here by `cargo xtask build`: the boot module's host adopts
// it, and the script tag draws its early link with it (loader.js).
var LINK_CSS = "@link-css";

// Where a mount target leads, as mount.rs finds it; null for an element
// no longer in the page.
function place(target) {
  if (target == null) {
    var footers = document.getElementsByTagName("footer");
    return document.querySelector("[data-agent-assist]") || footers[footers.length - 1] || null;
  }
  if (typeof target === "string") return document.querySelector(target);
  return target.isConnected ? target : null;
}

function whenIdle(f) {
  if (typeof requestIdleCallback === "function") requestIdleCallback(f, { timeout: 1000 });
  else setTimeout(f, 50);
}
