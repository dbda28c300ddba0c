// atalaya's web page: the few lines of script it needs. Refreshes the live part of a page
// (#live, every data-refresh seconds) in place, keeping the scroll position; and counts the
// alerts a silence's matchers match while they are typed. Pages work without it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (live && live.dataset.refresh) {
    var every = Math.max(1, Number(live.dataset.refresh)) * 1000;
    var last = null;
    var busy = false;
    var refresh = function () {
      // Not while the page is hidden, nor under a control someone is on (a refresh would
      // take the focus away from it).
      var focused = document.activeElement;
      if (busy || document.hidden || (focused && focused !== document.body && live.contains(focused))) {
        return;
      }
      busy = true;
      fetch(location.href, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (r) {
          var type = r.headers.get("content-type") || "";
          return r.ok && type.indexOf("text/html") === 0 ? r.text() : null;
        })
        .then(function (html) {
          // The server escaped every value; this is its own markup.
          if (html !== null && html !== last) {
            var y = window.scrollY;
            live.innerHTML = html;
            last = html;
            window.scrollTo(window.scrollX, y);
          }
        })
        .catch(function () {})
        .then(function () {
          busy = false;
        });
    };
    setInterval(refresh, every);
    document.addEventListener("visibilitychange", refresh);
  }
  var matchers = document.getElementById("matchers");
  var preview = document.getElementById("preview");
  if (matchers && preview && preview.dataset.src) {
    var timer = null;
    var count = function () {
      var url = preview.dataset.src + "?matchers=" + encodeURIComponent(matchers.value);
      fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (r) {
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            preview.innerHTML = html;
          }
        })
        .catch(function () {});
    };
    matchers.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(count, 250);
    });
  }
})();
