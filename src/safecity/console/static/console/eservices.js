/* E-service forms: conditional questions and the error summary (no inline script: CSP). */
(function () {
  "use strict";

  // A question with data-show-if="other" data-show-values="a|b" is shown only while the
  // question "other" on the same page has one of those values (the server ignores the
  // answers to hidden questions, so without JavaScript every question simply shows).
  function currentValue(form, name) {
    var inputs = form.querySelectorAll('[name="' + name + '"]');
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked) return el.value;
      } else {
        return el.value;
      }
    }
    return null;
  }

  function refresh(form) {
    form.querySelectorAll("[data-show-if]").forEach(function (field) {
      var name = field.getAttribute("data-show-if");
      if (!form.querySelector('[name="' + name + '"]')) return; // asked on an earlier page
      var wanted = (field.getAttribute("data-show-values") || "").split("|");
      field.hidden = wanted.indexOf(currentValue(form, name)) < 0;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-form=question]").forEach(function (form) {
      refresh(form);
      form.addEventListener("change", function () { refresh(form); });
    });
    var summary = document.querySelector("[data-error-summary]");
    if (summary) summary.focus();
  });
})();
