/* cryptopulse dashboard: number and time formatting, the way market reports write them.
 * Pure functions only (no DOM, no state), exposed as window.cpFormat so tests can call them.
 *   usd(3.38e12) -> "$3.38T"   usd(4.25e10) -> "$42.50B"   usd(8.53e8) -> "$853.0M"
 *   pct(-14.6)   -> "−14.6%"   (U+2212 minus sign; "+" for gains)
 */
(function (root) {
  "use strict";

  var MINUS = "\u2212";
  var DASH = "\u2014";
  var UNITS = [
    [1e12, "T", 2],
    [1e9, "B", 2],
    [1e6, "M", 1],
    [1e3, "K", 1],
  ];

  function finite(x) {
    return typeof x === "number" && isFinite(x);
  }

  function sign(x) {
    return x < 0 ? MINUS : "";
  }

  /** Compact USD amount: $3.38T, $42.50B, $853.0M, $12.3K, $950.00, $0; "—" when missing. */
  function usd(x) {
    if (!finite(x)) return DASH;
    if (x === 0) return "$0";
    var a = Math.abs(x);
    for (var i = 0; i < UNITS.length; i++) {
      var unit = UNITS[i];
      // Round first so 999.96e9 becomes $1.00T, not $1000.00B.
      var scaled = Number((a / unit[0]).toFixed(unit[2]));
      if (scaled >= 1 && (i === 0 || scaled < 1000)) {
        return sign(x) + "$" + scaled.toFixed(unit[2]) + unit[1];
      }
    }
    return sign(x) + "$" + a.toFixed(2);
  }

  /** Signed percentage with one decimal: +38.2%, −14.6%, 0.0%; "—" when missing. */
  function pct(x, digits) {
    if (!finite(x)) return DASH;
    var d = digits === undefined ? 1 : digits;
    var s = Math.abs(x).toFixed(d);
    if (Number(s) === 0) return s + "%";
    return (x < 0 ? MINUS : "+") + s + "%";
  }

  /** A token price: $102,345.10, $3.42, $0.4821, $0.00001234. */
  function price(x) {
    if (!finite(x)) return DASH;
    var a = Math.abs(x);
    var text;
    if (a >= 1) {
      text = a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    } else if (a >= 0.01) {
      text = a.toFixed(4);
    } else {
      text = a.toPrecision(4);
    }
    return sign(x) + "$" + text;
  }

  /** Plain number with a fixed number of decimals (RSI 43.2). */
  function num(x, digits) {
    if (!finite(x)) return DASH;
    var s = Math.abs(x).toFixed(digits === undefined ? 1 : digits);
    return (x < 0 && Number(s) !== 0 ? MINUS : "") + s;
  }

  /** Integer with thousands separators: 12,345. */
  function count(x) {
    if (!finite(x)) return DASH;
    return Math.round(x).toLocaleString("en-US");
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  /** Event time (epoch ms) as "2025-01-27 23:59 UTC". */
  function utc(ms) {
    if (!finite(ms)) return DASH;
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }

  /** "14:05" (UTC), for feeds. */
  function hhmm(ms) {
    if (!finite(ms)) return DASH;
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  }

  /** "Jan 27" (UTC), for chart axes and feeds. */
  function day(ms) {
    if (!finite(ms)) return DASH;
    var d = new Date(ms);
    return MONTHS[d.getUTCMonth()] + " " + d.getUTCDate();
  }

  /** Short axis label for a USD level: $3.4T, $950B. */
  function axisUsd(x) {
    if (!finite(x)) return "";
    var a = Math.abs(x);
    for (var i = 0; i < UNITS.length; i++) {
      if (a >= UNITS[i][0]) {
        var v = a / UNITS[i][0];
        return sign(x) + "$" + (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)) + UNITS[i][1];
      }
    }
    return sign(x) + "$" + a.toFixed(0);
  }

  root.cpFormat = {
    usd: usd, pct: pct, price: price, num: num, count: count,
    utc: utc, hhmm: hhmm, day: day, axisUsd: axisUsd, MINUS: MINUS, DASH: DASH,
  };
})(typeof window !== "undefined" ? window : this);
