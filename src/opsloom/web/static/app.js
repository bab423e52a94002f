// SLA countdowns: every element with data-deadline (epoch seconds) shows the time left.
(function () {
  "use strict";
  function left(seconds) {
    var s = Math.abs(Math.round(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var text = (h ? h + " h " : "") + (h || m ? m + " m " : "") + r + " s";
    return seconds >= 0 ? "due in " + text : "overdue by " + text;
  }
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var remaining = parseFloat(el.getAttribute("data-deadline")) - now;
      el.textContent = left(remaining);
      el.classList.toggle("overdue", remaining < 0);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
  });
})();
