// iocd portal: progressive enhancement only. Every read and every form works without this
// file; it adds "select all", asks before deleting, submits filter changes at once and shows an
// upload's progress. No inline script (CSP).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  // "Select all" for the batch delete.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=id][form=" + all.dataset.selectAll + "]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });

  // Ask before submitting a form marked data-confirm (read when it is submitted).
  document.addEventListener("submit", function (event) {
    var question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // Filters apply as soon as a list changes.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // An upload with a progress bar: the same POST, sent with XMLHttpRequest so the upload's
  // progress can be shown; the server answers with a redirect to the report, opened here.
  document.querySelectorAll("form[data-progress]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) { return; }
      event.preventDefault();
      var bar = document.getElementById(form.dataset.progress);
      var label = document.getElementById(form.dataset.progress + "-label");
      bar.classList.remove("hidden");
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          bar.max = e.total;
          bar.value = e.loaded;
          if (label) { label.textContent = "Uploading: " + Math.round(100 * e.loaded / e.total) + "%"; }
        }
      });
      request.upload.addEventListener("load", function () {
        bar.removeAttribute("value");
        if (label) { label.textContent = "Importing…"; }
      });
      request.addEventListener("load", function () {
        if (request.responseURL && request.responseURL !== form.action) {
          window.location.assign(request.responseURL);
        } else if (label) {
          label.textContent = "The import was refused (HTTP " + request.status + "): reload the page and try again.";
        }
      });
      request.addEventListener("error", function () {
        if (label) { label.textContent = "The upload failed; try again."; }
      });
      request.send(new FormData(form));
    });
  });
});
