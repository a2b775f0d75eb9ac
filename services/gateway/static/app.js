/* cryptopulse dashboard: the websocket connection (reconnect with backoff, resume) and the DOM rendering.
 * Uses only the public protocol of docs/protocol.md on the page's own origin (ws://<host>/ws).
 */
(function () {
  "use strict";

  var fmt = window.cpFormat;
  var charts = window.cpCharts;
  var esc = charts.esc;
  var store = new window.cpStore.Store();

  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 5000;
  var SILENCE_MS = 45000;     // three missed 15 s heartbeats: treat the socket as dead
  var RENDER_EVERY_MS = 200;  // at most five renders a second, whatever the update rate
  var TOP_ASSETS = 10;
  var LARGEST = 8;
  var WINDOWS = ["1h", "4h", "12h", "24h"];

  var $ = function (sel) { return document.querySelector(sel); };
  var byTest = function (id) { return document.querySelector('[data-testid="' + id + '"]'); };

  /* ---------------- connection ---------------- */

  var conn = {
    ws: null,
    attempt: 0,
    requestId: 0,
    lastMessageAt: 0,
    pending: [],       // subscribe requests not sent yet (see sendNextRequest)
    barrier: null,     // id of the ping whose pong releases the next request
    reconnects: 0,     // live connections lost (each one then retried with backoff)
    retryTimer: null,
    lastError: null,   // the last error message of the gateway, shown in the footer
    state: "connecting",
  };

  function nextId() {
    conn.requestId += 1;
    return conn.requestId;
  }

  function setStatus(state, detail) {
    conn.state = state;
    var el = byTest("conn-status");
    el.setAttribute("data-state", state);
    el.querySelector(".text").textContent = detail ? state + " · " + detail : state;
  }

  /* Same origin; a gateway with auth on takes the page's own ?token=<JWT> along. */
  function wsUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var token = new URLSearchParams(location.search).get("token");
    return scheme + "//" + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : "");
  }

  function send(ws, message) {
    ws.send(JSON.stringify(message));
  }

  /* Connect only once the gateway reports ready (/readyz): before that its snapshots are still
   * being rebuilt from Kafka and a resume would be answered from a partial state. */
  function connect() {
    conn.retryTimer = null;
    setStatus(conn.state === "connecting" ? "connecting" : "reconnecting",
      conn.attempt ? "attempt " + (conn.attempt + 1) : "");
    fetch("/readyz", { cache: "no-store" }).then(function (response) {
      if (response.ok) openSocket();
      else scheduleReconnect("gateway loading");
    }, function () {
      scheduleReconnect("gateway unreachable");
    });
  }

  function openSocket() {
    var ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (err) {
      scheduleReconnect("cannot open: " + err);
      return;
    }
    conn.ws = ws;
    ws.onopen = function () {
      conn.lastMessageAt = Date.now();
      conn.pending = store.subscribeRequests(nextId);
      conn.barrier = null;
      sendNextRequest(ws);
    };
    ws.onmessage = function (event) {
      conn.lastMessageAt = Date.now();
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      onMessage(ws, message);
    };
    ws.onclose = function (event) {
      if (conn.ws !== ws) return;
      conn.ws = null;
      if (conn.state === "live") conn.reconnects += 1;
      var why = CLOSE_REASONS[event.code] || "closed " + event.code;
      scheduleReconnect(why);
    };
    ws.onerror = function () { /* onclose follows and schedules the retry */ };
  }

  /* One subscribe at a time, each followed by a ping: its pong comes after everything the request
   * queued (history, replay, snapshots), so no burst of requests can overflow the gateway's queue. */
  function sendNextRequest(ws) {
    var request = conn.pending.shift();
    if (!request) {
      conn.barrier = null;
      return;
    }
    send(ws, request);
    conn.barrier = nextId();
    send(ws, { op: "ping", id: conn.barrier });
  }

  var CLOSE_REASONS = { 4001: "auth failed (add ?token=…)", 4002: "limit exceeded", 4003: "too slow",
    4004: "server restarting" };

  function scheduleReconnect(why) {
    if (conn.retryTimer !== null) return;
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, conn.attempt));
    var delay = Math.round(base * (0.8 + Math.random() * 0.4));
    conn.attempt += 1;
    setStatus("reconnecting", why + " · retry in " + (delay / 1000).toFixed(1) + " s");
    conn.retryTimer = setTimeout(connect, delay);
  }

  function onMessage(ws, message) {
    if (message.type === "ack") {
      conn.attempt = 0;
      if (conn.state !== "live") setStatus("live");
      return;
    }
    if (message.type === "pong") {
      if (message.id === conn.barrier) sendNextRequest(ws);
      return;
    }
    if (message.type === "error") {
      conn.lastError = message.code + ": " + message.message;
      renderFooter();
      return;
    }
    if (store.apply(message) === "refill") {
      var refill = store.refillRequest(message.channel, nextId);
      if (refill) {
        conn.pending.push(refill);
        if (conn.barrier === null) sendNextRequest(ws);
      }
    }
    scheduleRender();
  }

  /* A socket that stays silent through several heartbeats is dead even if the OS has not noticed. */
  setInterval(function () {
    if (conn.ws && conn.ws.readyState === WebSocket.OPEN && Date.now() - conn.lastMessageAt > SILENCE_MS) {
      var dead = conn.ws;
      conn.ws = null;  // its close event, whenever it comes, is ignored
      dead.close();
      if (conn.state === "live") conn.reconnects += 1;
      scheduleReconnect("no heartbeat");
    }
  }, 5000);

  /* ---------------- rendering ---------------- */

  var renderPending = false;
  var lastRender = 0;
  var renderedVersion = -1;

  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    var wait = Math.max(0, RENDER_EVERY_MS - (Date.now() - lastRender));
    setTimeout(function () {
      window.requestAnimationFrame(function () {
        renderPending = false;
        lastRender = Date.now();
        render(false);
      });
    }, wait);
  }

  /* Redraw the panels whose data changed (all of them when forced: resize, expand, first paint). */
  function render(force) {
    if (!force && store.version === renderedVersion) return;
    renderedVersion = store.version;
    var dirty = store.takeDirty();
    var all = !!force;
    renderKpis();
    if (all || dirty.candles || dirty.indicators || dirty.backfill) renderCharts();
    if (all || dirty.reference) renderSource();
    if (all || dirty.sector) renderSectors();
    if (all || dirty.liquidations) renderLiquidations();
    if (all || dirty.alerts) renderAlerts();
    byTest("as-of").textContent = fmt.utc(store.lastEventTs);
    renderFooter();
  }

  function renderFooter() {
    byTest("conn-detail").textContent = "reconnects " + conn.reconnects + " · duplicates skipped " +
      store.duplicates + (conn.lastError ? " · last gateway error " + conn.lastError : "");
  }

  function setText(id, text, change) {
    var el = byTest(id);
    if (el.textContent !== text) el.textContent = text;
    if (change !== undefined) {
      el.classList.toggle("pos", typeof change === "number" && change > 0);
      el.classList.toggle("neg", typeof change === "number" && change < 0);
    }
  }

  function deltaClass(x) {
    return typeof x !== "number" ? "" : x < 0 ? "neg" : x > 0 ? "pos" : "";
  }

  function renderKpis() {
    var total = store.sectors.total;
    if (total) {
      setText("total-cap", fmt.usd(total.cap_usd));
      setText("total-change", fmt.pct(total.change_24h_pct), total.change_24h_pct);
      setText("total-volume", fmt.usd(total.volume_24h_usd));
      setText("total-volume-change", fmt.pct(total.volume_change_24h_pct), total.volume_change_24h_pct);
    }
    var ai = store.sectors.ai;
    if (ai) {
      setText("ai-cap", fmt.usd(ai.cap_usd));
      setText("ai-change", fmt.pct(ai.change_24h_pct), ai.change_24h_pct);
    }
    var liq = store.liquidations["24h:all"];
    if (liq) {
      setText("liq-24h-total", fmt.usd(liq.total_usd));
      setText("liq-24h-long", fmt.usd(liq.long_usd));
      setText("liq-24h-short", fmt.usd(liq.short_usd));
    }
    var latest = latestIndicators();
    if (latest) {
      setText("rsi-value", fmt.num(latest.rsi14, 1));
      setText("sma50-value", fmt.usd(latest.sma50));
      setText("sma100-value", fmt.usd(latest.sma100));
    }
  }

  function latestIndicators() {
    var times = Object.keys(store.indicators).map(Number);
    if (!times.length) return null;
    return store.indicators[Math.max.apply(null, times)];
  }

  /* Where the data comes from: the ingestor's source and the reference data's as-of. */
  function renderSource() {
    var ingest = store.reference.ingest;
    var assets = store.reference.assets;
    setText("data-source", ingest ? ingest.source : "—");
    byTest("data-source").title = ingest && ingest.description ? ingest.description : "";
    var asOf = assets && assets.as_of ? String(assets.as_of) : "";
    if (asOf.length > 10) asOf = asOf.slice(0, 16).replace("T", " ") + " UTC";
    setText("ref-asof", asOf ? asOf + (assets.source ? " (" + assets.source + ")" : "") : "—");
  }

  // The chart's view of the whole series: {span, end} (see cpCharts.viewWindow); all of it at first.
  var chartState = { cap: null, view: { span: null, end: null }, count: 0 };

  function renderCharts() {
    var points = store.series();
    var capSvg = byTest("cap-chart");
    var rsiSvg = byTest("rsi-chart");
    var width = Math.max(200, Math.floor(capSvg.getBoundingClientRect().width));
    var narrow = width < 560;
    var capH = narrow ? 240 : 320;
    var rsiH = narrow ? 96 : 120;
    var win = charts.viewWindow(chartState.view, points.length);
    var cap = charts.capChart(points, width, capH, win);
    var rsi = charts.rsiChart(points, width, rsiH, win);
    chartState.count = points.length;
    capSvg.setAttribute("viewBox", "0 0 " + width + " " + capH);
    capSvg.setAttribute("height", capH);
    capSvg.setAttribute("data-points", String(cap.layout.points.length));
    capSvg.setAttribute("data-total", String(points.length));
    var shown = cap.layout.points;
    capSvg.setAttribute("data-first", shown.length ? String(shown[0].t) : "");
    capSvg.setAttribute("data-last", shown.length ? String(shown[shown.length - 1].t) : "");
    byTest("chart-range").textContent = shown.length ? fmt.day(shown[0].t) + " " +
      new Date(shown[0].t).getUTCFullYear() + " – " + fmt.day(shown[shown.length - 1].t) + " " +
      new Date(shown[shown.length - 1].t).getUTCFullYear() + " · " + shown.length + " of " + points.length +
      " days" : "";
    capSvg.innerHTML = cap.svg;
    rsiSvg.setAttribute("viewBox", "0 0 " + width + " " + rsiH);
    rsiSvg.setAttribute("height", rsiH);
    rsiSvg.innerHTML = rsi.svg;
    chartState.cap = cap;
  }

  function crosshair(svg, x) {
    var line = svg.querySelector("line.cross");
    if (x === null) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = document.createElementNS("http://www.w3.org/2000/svg", "line");
      line.setAttribute("class", "cross");
      line.setAttribute("y1", "0");
      line.setAttribute("y2", svg.viewBox.baseVal.height);
      svg.appendChild(line);
    }
    line.setAttribute("x1", x);
    line.setAttribute("x2", x);
  }

  function hideTooltip() {
    $(".tooltip").hidden = true;
    crosshair(byTest("cap-chart"), null);
  }

  function tooltipAt(event) {
    var tip = $(".tooltip");
    var cap = chartState.cap;
    if (!cap || !cap.layout.points.length) { hideTooltip(); return; }
    var svg = byTest("cap-chart");
    var box = svg.getBoundingClientRect();
    var x = event.clientX - box.left;
    var lay = cap.layout;
    var i = Math.floor(x / lay.slot);
    if (x > lay.plotW || i < 0 || i >= lay.points.length) { hideTooltip(); return; }
    var p = lay.points[i];
    tip.innerHTML = "<b>" + esc(fmt.day(p.t)) + " " + new Date(p.t).getUTCFullYear() +
      (p.closed ? "" : " · forming") + "</b>" +
      "<span>O " + fmt.usd(p.open) + "</span><span>H " + fmt.usd(p.high) + "</span>" +
      "<span>L " + fmt.usd(p.low) + "</span><span>C " + fmt.usd(p.close) + "</span>" +
      '<span class="sma50">SMA50 ' + fmt.usd(p.sma50) + '</span><span class="sma100">SMA100 ' +
      fmt.usd(p.sma100) + "</span><span>RSI " + fmt.num(p.rsi, 1) + "</span>";
    tip.hidden = false;
    crosshair(svg, lay.x(i));
    var left = lay.x(i) + 14;
    if (left + 170 > box.width) left = lay.x(i) - 184;
    tip.style.left = Math.max(0, left) + "px";
  }

  var expanded = { ai: false };

  var SECTORS = { ai: "AI", l1: "Layer 1", l2: "Layer 2", defi: "DeFi", meme: "Meme", stablecoin: "Stablecoins" };

  function sectorName(s) {
    return s.name || SECTORS[s.sector] || s.sector.charAt(0).toUpperCase() + s.sector.slice(1);
  }

  function pctCell(x) {
    return '<td class="num ' + deltaClass(x) + '">' + esc(fmt.pct(x)) + "</td>";
  }

  function renderSectors() {
    var rows = [];
    store.sectorList().forEach(function (s) {
      var id = s.sector;
      var members = s.members || [];
      var open = !!expanded[id];
      var toggle = members.length
        ? '<button class="toggle" data-sector="' + esc(id) + '" aria-expanded="' + open +
          '" data-testid="expand-' + esc(id) + '">' + (open ? "▾" : "▸") + "</button>"
        : '<span class="toggle-pad"></span>';
      rows.push('<tr class="sector' + (open ? " open" : "") + '" data-testid="sector-row-' + esc(id) + '">' +
        '<td class="name">' + toggle + esc(sectorName(s)) +
        (members.length ? ' <span class="count muted">' + members.length + "</span>" : "") + "</td>" +
        '<td class="num" data-testid="sector-cap-' + esc(id) + '">' + esc(fmt.usd(s.cap_usd)) + "</td>" +
        pctCell(s.change_24h_pct) +
        '<td class="num">' + esc(fmt.usd(s.volume_24h_usd)) + "</td>" +
        pctCell(s.volume_change_24h_pct) + "</tr>");
      if (open) {
        window.cpStore.membersWorstFirst(s).forEach(function (m) {
          rows.push('<tr class="member" data-testid="member-row-' + esc(m.asset) + '" data-sector="' +
            esc(id) + '"><td class="name">' + esc(m.asset) + ' <span class="price muted">' +
            esc(fmt.price(m.price)) + "</span></td>" +
            '<td class="num">' + esc(fmt.usd(m.cap_usd)) + "</td>" +
            '<td class="num ' + deltaClass(m.change_24h_pct) + '" data-testid="member-change-' + esc(m.asset) +
            '">' + esc(fmt.pct(m.change_24h_pct)) + '</td><td class="num"></td><td class="num"></td></tr>');
        });
      }
    });
    if (!rows.length) rows.push('<tr><td colspan="5" class="empty">waiting for sector data…</td></tr>');
    $(".sectors tbody").innerHTML = rows.join("");
  }

  function splitBar(name, value, scale, testid) {
    var total = value.total_usd || 0;
    var longShare = total > 0 ? value.long_usd / total * 100 : 0;
    var width = scale > 0 ? Math.max(2, total / scale * 100) : 0;
    return '<div class="bar-row"' + (testid ? ' data-testid="' + esc(testid) + '"' : "") + ">" +
      '<span class="name">' + esc(name) + "</span>" +
      '<div class="bar" title="' + esc(fmt.usd(total)) + '"><div class="fill" style="width:' + width.toFixed(1) +
      '%"><span class="long" style="width:' + longShare.toFixed(1) + '%"></span><span class="short" style="width:' +
      (100 - longShare).toFixed(1) + '%"></span></div></div>' +
      '<span class="amt long">' + esc(fmt.usd(value.long_usd)) + "</span>" +
      '<span class="amt short">' + esc(fmt.usd(value.short_usd)) + "</span>" +
      '<span class="amt total">' + esc(fmt.usd(total)) + "</span></div>";
  }

  function bars(items, testPrefix) {
    if (!items.length) return '<div class="empty">no liquidations yet</div>';
    var scale = Math.max.apply(null, items.map(function (it) { return it.value.total_usd || 0; }));
    return items.map(function (it) {
      return splitBar(it.name, it.value, scale, testPrefix + (it.id || it.name));
    }).join("");
  }

  var VENUES = {
    "binance-usdm": "Binance", binance: "Binance", bybit: "Bybit", okx: "OKX", bitmex: "BitMEX",
    deribit: "Deribit", gate: "Gate", coinbase: "Coinbase",
  };

  function venueName(id) {
    return VENUES[id] || id;
  }

  function renderLiquidations() {
    var windows = WINDOWS.filter(function (w) { return store.liquidations[w + ":all"]; })
      .map(function (w) { return { name: w, value: store.liquidations[w + ":all"] }; });
    byTest("liq-windows").innerHTML = bars(windows, "liq-window-");
    var exchanges = store.liquidationScopes("24h", "exchange:").map(function (it) {
      return { name: venueName(it.name), id: it.name, value: it.value };
    });
    byTest("liq-exchanges").innerHTML = bars(exchanges, "liq-exchange-");
    byTest("liq-assets").innerHTML = bars(store.liquidationScopes("24h", "asset:").slice(0, TOP_ASSETS),
      "liq-asset-");
    var largest = store.largest(LARGEST);
    byTest("liq-largest").innerHTML = largest.length ? largest.map(function (l) {
      return '<li><span class="side ' + esc(l.liquidated_side) + '">' + esc(l.liquidated_side) + "</span>" +
        '<span class="what">' + esc(l.instrument) + ' <span class="muted">' + esc(venueName(l.exchange)) +
        "</span></span>" +
        '<span class="amt">' + esc(fmt.usd(l.notional_usd)) + "</span>" +
        '<span class="when muted">' + esc(fmt.day(l.ts) + " " + fmt.hhmm(l.ts)) + "</span></li>";
    }).join("") : '<li class="empty">none yet</li>';
  }

  var ALERT_LABELS = {
    sma_cross: "SMA cross", rsi_cross: "RSI", local_high: "local high", local_low: "local low",
    support_resistance: "support", liquidation_cascade: "cascade", volume_surge: "volume",
    sector_drawdown: "drawdown",
  };

  function renderAlerts() {
    var list = store.alertList();
    byTest("alert-count").textContent = list.length ? String(list.length) : "";
    byTest("alerts-feed").innerHTML = list.length ? list.slice(0, 60).map(function (a) {
      return '<li class="alert k-' + esc(a.kind) + '" data-testid="alert"><span class="kind">' +
        esc(ALERT_LABELS[a.kind] || a.kind) + '</span><span class="when muted">' +
        esc(fmt.day(a.ts) + " " + fmt.hhmm(a.ts)) + '</span><p class="msg">' + esc(a.message) + "</p>" +
        '<span class="subject muted">' + esc(a.subject) + "</span></li>";
    }).join("") : '<li class="empty">no alerts yet</li>';
  }

  /* ---------------- wiring ---------------- */

  $(".sectors tbody").addEventListener("click", function (event) {
    var button = event.target.closest("button.toggle");
    if (!button) return;
    var id = button.getAttribute("data-sector");
    expanded[id] = !expanded[id];
    render(true);
  });
  byTest("cap-chart").addEventListener("mousemove", tooltipAt);
  byTest("cap-chart").addEventListener("mouseleave", hideTooltip);

  /* Zoom (buttons, mouse wheel around the pointer) and pan (drag) over the whole daily history. */
  function setView(view) {
    chartState.view = view;
    hideTooltip();
    renderCharts();
  }

  function pointerFraction(event) {
    var cap = chartState.cap;
    var box = byTest("cap-chart").getBoundingClientRect();
    if (!cap) return 1;
    return Math.max(0, Math.min(1, (event.clientX - box.left) / cap.layout.plotW));
  }

  byTest("zoom-in").addEventListener("click", function () {
    setView(charts.zoom(chartState.view, chartState.count, 0.5, 1));
  });
  byTest("zoom-out").addEventListener("click", function () {
    setView(charts.zoom(chartState.view, chartState.count, 2, 1));
  });
  byTest("zoom-all").addEventListener("click", function () {
    setView({ span: null, end: null });
  });
  byTest("cap-chart").addEventListener("wheel", function (event) {
    event.preventDefault();
    setView(charts.zoom(chartState.view, chartState.count, event.deltaY < 0 ? 0.8 : 1.25, pointerFraction(event)));
  }, { passive: false });
  var drag = null;
  byTest("cap-chart").addEventListener("pointerdown", function (event) {
    if (!chartState.cap) return;
    drag = { x: event.clientX, view: chartState.view, slot: chartState.cap.layout.slot };
    event.currentTarget.setPointerCapture(event.pointerId);
  });
  byTest("cap-chart").addEventListener("pointermove", function (event) {
    if (!drag) return;
    setView(charts.pan(drag.view, chartState.count, (event.clientX - drag.x) / drag.slot));
  });
  ["pointerup", "pointercancel"].forEach(function (name) {
    byTest("cap-chart").addEventListener(name, function () { drag = null; });
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { render(true); }, 100);
  });

  /* For tests and curious users: the live store and connection (read-only use). */
  window.cryptopulse = { store: store, conn: conn, render: render };
  render(true);
  connect();
})();
