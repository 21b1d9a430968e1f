// viihde: the campaign page's live figures. For each language, as the admin types: the
// segments and encoding of the text with the footer, its recipients and estimated cost.
// Counts as viihde/sms/segments.py does; without this file the Preview button shows the
// same figures from the server.
(function () {
  "use strict";

  var form = document.querySelector("form.campaign-compose");
  if (!form) { return; }

  // The GSM 03.38 default alphabet (one septet each, ESC included as the codec counts it)
  // and its extension table (an escape and a septet: two each). Anything else: UCS-2.
  var GSM7 = "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5" +
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u001b\u00c6\u00e6\u00df\u00c9" +
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ" +
    "\u00c4\u00d6\u00d1\u00dc\u00a7\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0";
  var GSM7_EXTENSION = "\f^{}\\[~]|\u20ac";

  function segmentation(text) {
    var septets = 0;
    for (var i = 0; i < text.length; i += 1) {
      var character = text.charAt(i);
      if (GSM7.indexOf(character) >= 0) {
        septets += 1;
      } else if (GSM7_EXTENSION.indexOf(character) >= 0) {
        septets += 2;
      } else {
        septets = -1;
        break;
      }
    }
    // UCS-2 units are UTF-16 code units, as JavaScript strings count them (an emoji is 2).
    var gsm = septets >= 0;
    var units = gsm ? septets : text.length;
    var single = gsm ? 160 : 70;
    var part = gsm ? 153 : 67;
    return {
      encoding: gsm ? "GSM-7" : "UCS-2",
      units: units,
      segments: units <= single ? 1 : Math.ceil(units / part)
    };
  }

  // The text as the server keeps it: LF line ends, no whitespace around it.
  function clean(body) {
    return body.replace(/\r\n?/g, "\n").trim();
  }

  // Prices in ten-thousandths of a euro, so that the cost is counted without rounding
  // errors and rounded half up to cents, as the server's Decimal does.
  function tenThousandths(price) {
    var parts = String(price).split(".");
    var fraction = ((parts[1] || "") + "0000").slice(0, 4);
    return parseInt(parts[0] || "0", 10) * 10000 + parseInt(fraction, 10);
  }

  function euros(cents) {
    var rest = String(cents % 100);
    return Math.floor(cents / 100) + "." + (rest.length < 2 ? "0" + rest : rest);
  }

  var price = tenThousandths(form.getAttribute("data-price"));
  var audience = JSON.parse(form.getAttribute("data-audience") || "{}");
  var purpose = form.querySelector("select[name=purpose]");
  var language = document.documentElement.lang || "fi";
  var money = new Intl.NumberFormat(language, { style: "currency", currency: "EUR" });

  function show(figures, name, value) {
    var element = figures.querySelector("[data-figure='" + name + "']");
    element.textContent = value;
    return element;
  }

  function update(textarea) {
    var code = textarea.getAttribute("data-language");
    var figures = document.getElementById("figures-" + code);
    var body = clean(textarea.value);
    var ordinary = segmentation(body + "\n" + textarea.getAttribute("data-footer"));
    var customer = segmentation(body + "\n" + textarea.getAttribute("data-customer-footer"));
    var counts = (audience[purpose.value] || {})[code] || [0, 0];
    var cost = price * (counts[0] * ordinary.segments + counts[1] * customer.segments);
    var cents = Math.floor((cost + 50) / 100);
    show(figures, "segments", ordinary.segments);
    show(figures, "encoding", ordinary.encoding);
    show(figures, "units", ordinary.units);
    show(figures, "recipients", counts[0] + counts[1]);
    show(figures, "customer-segments", customer.segments);
    figures.querySelector("[data-customers]").hidden = counts[1] === 0;
    show(figures, "cost", money.format(cents / 100)).setAttribute("data-value", euros(cents));
  }

  var bodies = form.querySelectorAll("textarea[data-footer]");
  function updateAll() {
    bodies.forEach(update);
  }
  bodies.forEach(function (textarea) {
    textarea.addEventListener("input", function () { update(textarea); });
  });
  purpose.addEventListener("change", updateAll);
  updateAll();
}());
