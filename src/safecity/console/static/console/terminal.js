/* SafeCity officer terminal: live alert cards over Server-Sent Events (no inline script: CSP).
 * The server renders each card; this script only puts it in place, removes closed alerts
 * and shows the connection state. EventSource reconnects by itself (Last-Event-ID). */
(function () {
  "use strict";

  var root = document.querySelector("[data-terminal]");
  if (!root || typeof window.EventSource !== "function") return;
  var list = document.getElementById("term-list");
  var empty = document.getElementById("term-empty");
  var status = document.getElementById("term-status");

  function setStatus(state) {
    if (!status) return;
    status.setAttribute("data-state", state);
    status.textContent = status.getAttribute("data-msg-" + state) || state;
  }

  function busy(card) {
    // Do not replace a card the officer is typing notes into.
    return card.contains(document.activeElement) || !!card.querySelector("details[open]");
  }

  function place(data) {
    var existing = document.getElementById("alert-" + data.id);
    if (!data.open) {
      if (existing) existing.remove();
    } else {
      var holder = document.createElement("ul");
      holder.innerHTML = data.html;
      var card = holder.firstElementChild;
      if (!card) return;
      if (existing && busy(existing)) {
        var info = card.querySelector(".term-card__info");
        var oldInfo = existing.querySelector(".term-card__info");
        if (info && oldInfo) oldInfo.replaceWith(info);
      } else if (existing) {
        existing.replaceWith(card);
      } else {
        card.classList.add("is-new");
        list.insertBefore(card, list.firstChild);
        if (navigator.vibrate) navigator.vibrate(200);
      }
    }
    if (empty) empty.hidden = list.children.length > 0;
  }

  var source = new EventSource(root.getAttribute("data-stream-url"));
  source.addEventListener("open", function () { setStatus("live"); });
  source.addEventListener("error", function () { setStatus("offline"); });
  source.addEventListener("alert", function (event) {
    try {
      place(JSON.parse(event.data));
    } catch (err) {
      /* a malformed event must not stop the terminal */
    }
  });
})();
