// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
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
