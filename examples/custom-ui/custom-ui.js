// A custom UI on the bare API: createSessionCode(), cancelSessionCode() and
// the widget's events. No built-in modal is used.
(function () {
  var button = document.getElementById("get-code");
  var box = document.getElementById("code-box");
  var codeEl = document.getElementById("code");
  var expiry = document.getElementById("expiry");
  var message = document.getElementById("message");

  window.AgentAssist.ready.then(function (widget) {
    if (!widget) return;
    button.addEventListener("click", function () {
      message.textContent = "";
      button.disabled = true;
      widget.createSessionCode().then(function (session) {
        codeEl.textContent = session.code.slice(0, 3) + " " + session.code.slice(3);
        expiry.textContent = "Valid until " + new Date(session.expiresAt).toLocaleTimeString();
        box.hidden = false;
      }, function (err) {
        message.textContent = "Sorry, no code right now (" + err.code + "). Please try again.";
      }).finally(function () {
        button.disabled = false;
      });
    });
    document.getElementById("cancel").addEventListener("click", function () {
      widget.cancelSessionCode();
    });
    widget.on("code.cancelled", function () {
      box.hidden = true;
      message.textContent = "Code withdrawn.";
    });
    widget.on("code.expired", function () {
      box.hidden = true;
      message.textContent = "That code expired. Ask for a new one when the agent is ready.";
    });
  });
})();
