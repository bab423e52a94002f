// ReDoc over this server's OpenAPI document (served from vendored files, no CDN).
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("redoc");
  Redoc.init(root.getAttribute("data-spec-url"), { hideDownloadButton: false }, root);
});
