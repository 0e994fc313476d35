// The web admin's only script (served from this origin: the CSP allows no inline script).
// Everything works without it; it only adds confirmations and "select all".
"use strict";

document.addEventListener("submit", function (event) {
  // A form or its submit button may ask for a confirmation: data-confirm="Refund the whole call?"
  var form = event.target;
  var button = event.submitter;
  var question = (button && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("change", function (event) {
  // <input type="checkbox" data-select-all="posting"> ticks every checkbox named "posting" in its form.
  var box = event.target;
  if (!box.dataset || !box.dataset.selectAll) {
    return;
  }
  var boxes = box.form.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]');
  boxes.forEach(function (other) { other.checked = box.checked; });
});
