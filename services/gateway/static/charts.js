/* cryptopulse dashboard: SVG markup for the market-cap chart and the RSI panel (pure: data in, text out). */
(function (root) {
  "use strict";

  var fmt = root.cpFormat;
  var AXIS_W = 62;
  var PAD_TOP = 10;
  var AXIS_H = 22;

  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  function r(x) {
    return Math.round(x * 10) / 10;
  }

  /* "Nice" grid levels between lo and hi (about `count` of them). */
  function niceTicks(lo, hi, count) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var raw = span / count;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    var step = mag;
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * mag >= raw) { step = steps[i] * mag; break; }
    }
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
    return out;
  }

  /* The points of a view {start, end} (indexes into the whole series; null = everything). */
  function visible(points, view) {
    return view ? points.slice(view.start, view.end) : points;
  }

  /* x layout shared by both panels so candles and RSI line up: the view's points fill the width. */
  function layout(points, width, view) {
    var plotW = Math.max(50, width - AXIS_W);
    var shown = visible(points, view);
    var slot = plotW / Math.max(shown.length, 1);
    return {
      points: shown,
      plotW: plotW,
      slot: slot,
      x: function (i) { return (i + 0.5) * slot; },
    };
  }

  function xLabel(x, t, height) {
    return '<line class="grid" x1="' + r(x) + '" x2="' + r(x) + '" y1="' + PAD_TOP + '" y2="' +
      (height - AXIS_H) + '"/><text class="axis" x="' + r(x) + '" y="' + (height - 6) +
      '" text-anchor="middle">' + esc(fmt.day(t)) + "</text>";
  }

  /* Day labels every few candles on a short series; month starts on a long one. */
  function xLabels(lay, height) {
    var minGap = 56;
    var step = Math.ceil(minGap / lay.slot);
    var out = [];
    var n = lay.points.length;
    if (step <= 10) {
      for (var i = n - 1; i >= 0; i -= step) {
        if (lay.x(i) > 20) out.push(xLabel(lay.x(i), lay.points[i].t, height));
      }
      return out.join("");
    }
    var lastMonth = null;
    var lastX = -Infinity;
    lay.points.forEach(function (p, j) {
      var d = new Date(p.t);
      var month = d.getUTCFullYear() * 12 + d.getUTCMonth();
      var x = lay.x(j);
      if (lastMonth !== null && month !== lastMonth && x - lastX >= minGap && x < lay.plotW - 20) {
        out.push(xLabel(x, p.t, height));
        lastX = x;
      }
      lastMonth = month;
    });
    return out.join("");
  }

  function polyline(lay, y, pick, cls) {
    var parts = [];
    var segment = [];
    lay.points.forEach(function (p, i) {
      var v = pick(p);
      if (v === null || v === undefined) {
        if (segment.length) parts.push(segment);
        segment = [];
        return;
      }
      segment.push(r(lay.x(i)) + "," + r(y(v)));
    });
    if (segment.length) parts.push(segment);
    return parts.map(function (s) {
      return '<polyline class="' + cls + '" points="' + s.join(" ") + '"/>';
    }).join("");
  }

  function priceTag(y, value, cls, text, plotW) {
    return '<g class="tag ' + cls + '"><rect x="' + (plotW + 2) + '" y="' + r(y - 9) + '" width="' +
      (AXIS_W - 4) + '" height="18" rx="3"/><text x="' + (plotW + AXIS_W / 2) + '" y="' + r(y + 4) +
      '" text-anchor="middle">' + esc(text) + "</text></g>";
  }

  /* Candles of the total market cap with SMA(50) and SMA(100). */
  function capChart(points, width, height, view) {
    var lay = layout(points, width, view);
    var plotH = height - PAD_TOP - AXIS_H;
    if (!lay.points.length) {
      return { svg: '<text class="empty" x="' + width / 2 + '" y="' + height / 2 +
        '" text-anchor="middle">waiting for candles…</text>', layout: lay };
    }
    var lo = Infinity;
    var hi = -Infinity;
    lay.points.forEach(function (p) {
      [p.low, p.high, p.sma50, p.sma100].forEach(function (v) {
        if (typeof v === "number") { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      });
    });
    var pad = (hi - lo) * 0.06 || hi * 0.01 || 1;
    lo -= pad;
    hi += pad;
    var y = function (v) { return PAD_TOP + (hi - v) / (hi - lo) * plotH; };
    var out = [];
    niceTicks(lo, hi, 5).forEach(function (v) {
      out.push('<line class="grid" x1="0" x2="' + lay.plotW + '" y1="' + r(y(v)) + '" y2="' + r(y(v)) + '"/>');
      out.push('<text class="axis" x="' + (width - 4) + '" y="' + r(y(v) + 4) + '" text-anchor="end">' +
        esc(fmt.axisUsd(v)) + "</text>");
    });
    out.push(xLabels(lay, height));
    var body = Math.max(1, Math.min(lay.slot * 0.7, 14));
    lay.points.forEach(function (p, i) {
      var x = lay.x(i);
      var up = p.close >= p.open;
      var top = y(Math.max(p.open, p.close));
      var h = Math.max(1, Math.abs(y(p.open) - y(p.close)));
      out.push('<g class="c ' + (up ? "up" : "down") + (p.closed ? "" : " forming") + '" data-t="' + p.t +
        '"><line x1="' + r(x) + '" x2="' + r(x) + '" y1="' + r(y(p.high)) + '" y2="' + r(y(p.low)) +
        '"/><rect x="' + r(x - body / 2) + '" y="' + r(top) + '" width="' + r(body) + '" height="' + r(h) +
        '"/></g>');
    });
    out.push(polyline(lay, y, function (p) { return p.sma100; }, "sma100"));
    out.push(polyline(lay, y, function (p) { return p.sma50; }, "sma50"));
    var last = lay.points[lay.points.length - 1];
    out.push(priceTag(y(last.close), last.close, last.close >= last.open ? "up" : "down",
      fmt.axisUsd(last.close), lay.plotW));
    return { svg: out.join(""), layout: lay, y: y };
  }

  /* RSI(14) with the 30/50/70 guides and the 30–70 band. */
  function rsiChart(points, width, height, view) {
    var lay = layout(points, width, view);
    var plotH = height - PAD_TOP - 8;
    var y = function (v) { return PAD_TOP + (100 - v) / 100 * plotH; };
    var out = [];
    out.push('<rect class="band" x="0" width="' + lay.plotW + '" y="' + r(y(70)) + '" height="' +
      r(y(30) - y(70)) + '"/>');
    [30, 50, 70].forEach(function (level) {
      out.push('<line class="guide g' + level + '" x1="0" x2="' + lay.plotW + '" y1="' + r(y(level)) + '" y2="' +
        r(y(level)) + '"/>');
      out.push('<text class="axis" x="' + (width - 4) + '" y="' + r(y(level) + 4) + '" text-anchor="end">' +
        level + "</text>");
    });
    out.push(polyline(lay, y, function (p) { return p.rsi; }, "rsi"));
    var withRsi = lay.points.filter(function (p) { return p.rsi !== null; });
    if (withRsi.length) {
      var v = withRsi[withRsi.length - 1].rsi;
      out.push(priceTag(y(v), v, v >= 50 ? "up" : "down", fmt.num(v, 1), lay.plotW));
    } else {
      out.push('<text class="empty" x="' + lay.plotW / 2 + '" y="' + height / 2 +
        '" text-anchor="middle">RSI(14) needs 15 daily closes</text>');
    }
    return { svg: out.join(""), layout: lay };
  }

  /* Zoom and pan over a series of n points, pure. A view is {span, end}: how many points are shown
   * (null = all) and the index after the last one shown (null = follow the newest point). */
  var MIN_SPAN = 10;

  function viewWindow(view, n) {
    var span = view.span === null ? n : Math.max(Math.min(MIN_SPAN, n), Math.min(n, view.span));
    var end = view.end === null ? n : Math.max(span, Math.min(n, view.end));
    return { start: end - span, end: end };
  }

  /* Zoom by `factor` (< 1 zooms in) keeping the point at `anchor` (0..1 across the plot) in place. */
  function zoom(view, n, factor, anchor) {
    var w = viewWindow(view, n);
    var span = Math.round((w.end - w.start) * factor);
    if (span >= n) return { span: null, end: null };
    span = Math.max(Math.min(MIN_SPAN, n), span);
    var pivot = w.start + (w.end - w.start) * anchor;
    var end = Math.round(pivot + span * (1 - anchor));
    end = Math.max(span, Math.min(n, end));
    return { span: span, end: end >= n ? null : end };
  }

  /* Move the view by `points` (positive = towards older points). */
  function pan(view, n, points) {
    var w = viewWindow(view, n);
    if (w.end - w.start >= n) return view;
    var end = Math.max(w.end - w.start, Math.min(n, w.end - Math.round(points)));
    return { span: w.end - w.start, end: end >= n ? null : end };
  }

  root.cpCharts = { capChart: capChart, rsiChart: rsiChart, esc: esc, niceTicks: niceTicks,
    viewWindow: viewWindow, zoom: zoom, pan: pan };
})(typeof window !== "undefined" ? window : this);
