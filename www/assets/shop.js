// The demo shop's fake login. A real site's server signs its logged-in
// user's identity with the site's secret; here the broker's demo-only
// endpoint (`serve --demo-login`) plays that server. The page then hands the
// signed identity to the widget with identify(), and reset() on sign-out.
(function () {
  var KEY = "lumen-demo-user";
  var nameEl = document.getElementById("account-name");
  var signIn = document.getElementById("sign-in");
  var signOut = document.getElementById("sign-out");

  function show(user) {
    nameEl.textContent = user ? "Signed in as " + user.name : "";
    nameEl.hidden = !user;
    signIn.hidden = !!user;
    signOut.hidden = !user;
  }

  function login(user) {
    return fetch("/demo/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ site_key: "demo", user: user }),
    }).then(function (res) {
      if (!res.ok) throw new Error("demo login failed: " + res.status);
      return res.json();
    });
  }

  function identify(identity) {
    return window.AgentAssist.ready.then(function (widget) {
      if (widget) widget.identify(identity);
    });
  }

  signIn.addEventListener("click", function () {
    login("alex").then(function (identity) {
      localStorage.setItem(KEY, "alex");
      show(identity);
      return identify(identity);
    }).catch(function (err) {
      console.error(err);
    });
  });

  signOut.addEventListener("click", function () {
    localStorage.removeItem(KEY);
    show(null);
    window.AgentAssist.ready.then(function (widget) {
      // Forget who was here: the next visitor on this device starts afresh.
      if (widget) widget.reset();
    });
  });

  // The basket: a count in the header (on the pages that have one).
  var basket = document.getElementById("basket");
  var count = 0;
  document.querySelectorAll(".product .add").forEach(function (button) {
    button.addEventListener("click", function () {
      count += 1;
      basket.textContent = "Basket (" + count + ")";
    });
  });

  // Still signed in from an earlier page: a fresh signed identity each load.
  var remembered = localStorage.getItem(KEY);
  if (remembered) {
    login(remembered).then(function (identity) {
      show(identity);
      return identify(identity);
    }).catch(function (err) {
      console.error(err);
    });
  } else {
    show(null);
  }
})();
