// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Signup links in pypicloud's form (/login#/?token=...) lead to the registration page.
  var signup = /^#\/\?token=(.+)$/.exec(window.location.hash);
  if (signup && /\/login$/.test(window.location.pathname)) {
    var token = decodeURIComponent(signup[1]);
    var user = token.split(":").slice(0, -2).join(":");
    window.location.replace(window.location.pathname.replace(/login$/, "register") +
      "?username=" + encodeURIComponent(user) + "&token=" + encodeURIComponent(token));
    return;
  }
  // Uploads larger than the server accepts are refused before they are sent.
  document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
    input.addEventListener("change", function () {
      var limit = Number(input.getAttribute("data-max-bytes"));
      var file = input.files && input.files[0];
      input.setCustomValidity(file && file.size > limit ? input.getAttribute("data-too-large") : "");
      input.reportValidity();
    });
  });
  // Copy buttons: <button data-copy> copies the text of the nearest .copy-source.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var box = button.closest("[data-copy-box]");
      var source = box && box.querySelector(".copy-source");
      if (!source) return;
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 1500);
      });
    });
  });
  // Destructive forms ask first: <form data-confirm="Delete x?">.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
