// viihde: small enhancements only. Every page works without this file.
(function () {
  "use strict";

  // Focus the error summary, so screen readers and keyboards start from the problem.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }

  // One press is enough: disable a form's buttons once it is on its way (after the
  // browser has taken the pressed button's name and value into the submission).
  document.addEventListener("submit", function (event) {
    var buttons = event.target.querySelectorAll("button, input[type=submit]");
    window.setTimeout(function () {
      buttons.forEach(function (button) { button.disabled = true; });
    }, 0);
  });

  // Resend countdown: a new code can be asked for only after a minute.
  document.querySelectorAll("button[data-wait]").forEach(function (button) {
    var left = parseInt(button.getAttribute("data-wait"), 10);
    if (!(left > 0)) { return; }
    var label = button.textContent;
    button.disabled = true;
    (function tick() {
      if (left <= 0) {
        button.disabled = false;
        button.textContent = label;
        return;
      }
      button.textContent = label + " (" + left + " s)";
      left -= 1;
      window.setTimeout(tick, 1000);
    }());
  });

  // WebOTP: on Android, fill the code from the SMS (it ends with "@host #code").
  var codeInput = document.querySelector("input[autocomplete=one-time-code]");
  if (codeInput && "OTPCredential" in window) {
    var abort = new AbortController();
    codeInput.form.addEventListener("submit", function () { abort.abort(); });
    navigator.credentials.get({ otp: { transport: ["sms"] }, signal: abort.signal })
      .then(function (otp) {
        if (otp && otp.code) {
          codeInput.value = otp.code;
          codeInput.form.requestSubmit();
        }
      })
      .catch(function () { /* typed by hand instead */ });
  }
}());
