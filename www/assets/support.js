// The standalone support page: one button that opens the share-screen modal.
// A click before the widget has loaded is remembered and honoured once it has.
(function () {
  var button = document.getElementById("get-code");
  var pending = false;
  var widget = null;
  button.addEventListener("click", function () {
    if (widget) widget.open();
    else pending = true;
  });
  // The script tag (data-mount="none") made the widget without a footer link.
  window.AgentAssist.ready.then(function (w) {
    widget = w;
    if (w && pending) w.open();
  });
})();
