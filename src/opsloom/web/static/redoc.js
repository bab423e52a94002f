// ReDoc over this server's OpenAPI document (served from vendored files, no CDN).
(function () {
  "use strict";
  // ReDoc's sidebar shows a logo from its vendor's CDN; on an air-gapped host (and under this
  // page's policy) that is a failing request. Its image gets an empty source instead, which
  // ReDoc answers by leaving the logo out; the bundle itself stays as published.
  var CDN = "https://cdn.redoc.ly/";
  function local(value) {
    return String(value).indexOf(CDN) === 0 ? "data:," : value;
  }
  var src = Object.getOwnPropertyDescriptor(HTMLImageElement.prototype, "src");
  Object.defineProperty(HTMLImageElement.prototype, "src", {
    configurable: true,
    enumerable: src.enumerable,
    get: src.get,
    set: function (value) { src.set.call(this, local(value)); }
  });
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    var kept = name === "src" && this instanceof HTMLImageElement ? local(value) : value;
    return setAttribute.call(this, name, kept);
  };
  window.addEventListener("load", function () {
    var root = document.getElementById("redoc");
    Redoc.init(root.getAttribute("data-spec-url"), {}, root);
  });
})();
