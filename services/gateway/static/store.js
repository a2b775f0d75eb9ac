/* cryptopulse dashboard: the client-side state, fed by gateway messages (pure: no DOM, no socket).
 *
 * Resume rules (docs/protocol.md): the store remembers the last seq and stream epoch per channel and
 * builds the subscribe requests with `since: {seq, epoch}`; a snapshot/update whose seq is not newer
 * than the last one seen is a duplicate and is ignored; a snapshot with "recovered": false, or a
 * message of another epoch (a reset stream), replaces the channel's state.
 * Chart series are keyed by open_time, so a replayed or re-sent point replaces, never duplicates.
 */
(function (root) {
  "use strict";

  // Each request's history is queued at once by the gateway next to at most
  // CRYPTOPULSE_GATEWAY_QUEUE_SIZE (default 1000) unconflated messages: one chart channel per request,
  // and the app waits for a pong after each request before sending the next one.
  var CHART_HISTORY = 900;
  // On resume the gateway conflates a state channel's replay to its latest value, so chart channels
  // also ask for recent history: candles that closed while we were away are not lost.
  var CHART_RESUME_HISTORY = 300;
  var ALERT_HISTORY = 50;
  var MAX_ALERTS = 200;
  // Client frames must stay under the gateway's CRYPTOPULSE_GATEWAY_MAX_FRAME_BYTES (default 4096).
  var MAX_FRAME_CHARS = 3500;

  /* What the page subscribes to; one request (or more, for long `since` maps) per group. */
  var GROUPS = [
    { channels: ["candles:total:1d"], history: CHART_HISTORY, resumeHistory: CHART_RESUME_HISTORY },
    // the backfilled daily closes the processor seeded its indicators with: the chart's older history
    { channels: ["backfill:total:1d"], history: CHART_HISTORY, resumeHistory: 0 },
    { channels: ["indicators:total:1d"], history: CHART_HISTORY, resumeHistory: CHART_RESUME_HISTORY },
    { channels: ["alerts:*"], history: ALERT_HISTORY, resumeHistory: 0 },
    {
      channels: ["sector:*", "liquidations:1h:all", "liquidations:4h:all", "liquidations:12h:all",
        "liquidations:24h:*", "reference:assets", "reference:ingest"],
      history: 0,
      resumeHistory: 0,
    },
  ];

  function matches(pattern, channel) {
    if (pattern.charAt(pattern.length - 1) === "*") {
      return channel.indexOf(pattern.slice(0, -1)) === 0;
    }
    return pattern === channel;
  }

  function Store() {
    this.reset();
  }

  Store.prototype.reset = function () {
    this.seq = {};            // channel -> last seq applied
    this.epoch = {};          // channel -> stream epoch of that seq (another epoch = a reset stream)
    this.sectors = {};        // sector id -> sector-cap value
    this.liquidations = {};   // "window:scope" -> liquidation-totals value
    this.candles = {};        // open_time -> candle value (total cap, 1d)
    this.indicators = {};     // open_time -> indicators value (total cap, 1d)
    this.backfill = {};       // open_time -> backfilled closed candle (total cap, 1d), before the live ones
    this.reference = {};      // status kind ("assets", "ingest") -> reference-status value
    this.alerts = {};         // alert id -> alert value
    this.lastEventTs = null;  // newest event time seen in any value
    this.version = 0;         // bumps on every applied change (render trigger)
    this.dirty = {};          // family -> true when changed since the last takeDirty()
    this.duplicates = 0;      // messages ignored as already seen (for tests and the status line)
    this.resets = 0;          // recovered:false snapshots
  };

  /* Requests to send after (re)connecting: resume with `since` where we have seqs, else ask history. */
  Store.prototype.subscribeRequests = function (nextId) {
    var requests = [];
    var self = this;
    GROUPS.forEach(function (group) {
      var since = {};
      var known = 0;
      Object.keys(self.seq).forEach(function (channel) {
        if (group.channels.some(function (p) { return matches(p, channel); })) {
          var epoch = self.epoch[channel];
          since[channel] = epoch === undefined ? self.seq[channel] : { seq: self.seq[channel], epoch: epoch };
          known += 1;
        }
      });
      if (known === 0) {
        var first = { op: "subscribe", id: nextId(), channels: group.channels };
        if (group.history) first.history = group.history;
        requests.push(first);
        return;
      }
      // Split `since` so each frame stays small; re-subscribing a pattern is harmless
      // (the extra snapshots are dropped below as already-seen seqs).
      var chunk = {};
      var size = 0;
      var flush = function () {
        var request = { op: "subscribe", id: nextId(), channels: group.channels, since: chunk };
        if (group.resumeHistory) request.history = group.resumeHistory;
        requests.push(request);
      };
      Object.keys(since).forEach(function (channel) {
        var entry = JSON.stringify(since[channel]).length + channel.length + 4;
        if (size + entry > MAX_FRAME_CHARS && size > 0) {
          flush();
          chunk = {};
          size = 0;
        }
        chunk[channel] = since[channel];
        size += entry;
      });
      flush();
    });
    return requests;
  };

  /* The re-subscription that refills a chart or alert channel after recovered:false. */
  Store.prototype.refillRequest = function (channel, nextId) {
    for (var i = 0; i < GROUPS.length; i++) {
      var group = GROUPS[i];
      if (group.history && group.channels.some(function (p) { return matches(p, channel); })) {
        return { op: "subscribe", id: nextId(), channels: [channel], history: group.history };
      }
    }
    return null;
  };

  /* Apply one server message. Returns "refill" when the channel must be re-fetched with history. */
  Store.prototype.apply = function (message) {
    var type = message.type;
    if (type !== "snapshot" && type !== "update" && type !== "history") return null;
    var channel = message.channel;
    var data = message.data;
    if (typeof channel !== "string" || !data || typeof data !== "object") return null;
    var last = this.seq[channel];
    var outcome = null;
    var epoch = typeof message.epoch === "string" ? message.epoch : undefined;
    if (epoch !== undefined && this.epoch[channel] !== undefined && epoch !== this.epoch[channel]) {
      // The channel's stream was reset (e.g. the broker restarted empty): seqs start over, and what
      // we hold for it is gone from the gateway. Start the channel anew (charts refill their history).
      this.resets += 1;
      this.clearChannel(channel);
      delete this.seq[channel];
      last = undefined;
      outcome = "refill";
    } else if (type === "snapshot" && message.recovered === false) {
      this.resets += 1;
      this.clearChannel(channel);
      outcome = "refill";
    } else if (type !== "history" && last !== undefined && message.seq <= last) {
      this.duplicates += 1;
      return null;
    }
    if (type !== "history" && (last === undefined || message.seq > last || outcome)) {
      this.seq[channel] = message.seq;
    }
    if (epoch !== undefined) this.epoch[channel] = epoch;
    this.applyValue(channel, data);
    this.dirty[channel.slice(0, channel.indexOf(":"))] = true;
    var family = channel.slice(0, channel.indexOf(":"));
    var eventTime = family !== "reference" && family !== "backfill";  // their ts is not market time
    if (eventTime && typeof data.ts === "number" && (this.lastEventTs === null || data.ts > this.lastEventTs)) {
      this.lastEventTs = data.ts;
    }
    this.version += 1;
    return outcome;
  };

  /* Families changed since the last call (the renderer redraws only those panels). */
  Store.prototype.takeDirty = function () {
    var dirty = this.dirty;
    this.dirty = {};
    return dirty;
  };

  Store.prototype.clearChannel = function (channel) {
    var family = channel.split(":", 1)[0];
    if (family === "candles") this.candles = {};
    else if (family === "backfill") this.backfill = {};
    else if (family === "indicators") this.indicators = {};
    else if (family === "alerts") {
      var kind = channel.slice("alerts:".length);
      var alerts = this.alerts;
      Object.keys(alerts).forEach(function (id) {
        if (alerts[id].kind === kind) delete alerts[id];
      });
    }
    // State families (sector, liquidations) are replaced by the snapshot value itself.
  };

  function keepNewer(map, key, value) {
    var old = map[key];
    if (old && typeof old.ts === "number" && typeof value.ts === "number" && value.ts < old.ts) return;
    map[key] = value;
  }

  Store.prototype.applyValue = function (channel, data) {
    var colon = channel.indexOf(":");
    var family = channel.slice(0, colon);
    var key = channel.slice(colon + 1);
    if (family === "sector") {
      this.sectors[data.sector || key] = data;
    } else if (family === "liquidations") {
      this.liquidations[key] = data;
    } else if (family === "candles" && typeof data.open_time === "number") {
      keepNewer(this.candles, data.open_time, data);
    } else if (family === "indicators" && typeof data.open_time === "number") {
      keepNewer(this.indicators, data.open_time, data);
    } else if (family === "backfill" && typeof data.open_time === "number" && data.closed === true) {
      keepNewer(this.backfill, data.open_time, data);
    } else if (family === "reference") {
      this.reference[data.kind || key] = data;
    } else if (family === "alerts") {
      var id = data.id || channel + "@" + data.ts;
      this.alerts[id] = data;
      this.trimAlerts();
    }
  };

  Store.prototype.trimAlerts = function () {
    var ids = Object.keys(this.alerts);
    if (ids.length <= MAX_ALERTS) return;
    var alerts = this.alerts;
    ids.sort(function (a, b) { return alerts[a].ts - alerts[b].ts; });
    ids.slice(0, ids.length - MAX_ALERTS).forEach(function (id) { delete alerts[id]; });
  };

  /* Chart points, oldest first, one per open_time: the live candle (else the backfilled one) merged
   * with its indicators; backfilled days before the first live one have no indicator values. */
  Store.prototype.series = function () {
    var times = {};
    Object.keys(this.backfill).forEach(function (t) { times[t] = true; });
    Object.keys(this.candles).forEach(function (t) { times[t] = true; });
    Object.keys(this.indicators).forEach(function (t) { times[t] = true; });
    var self = this;
    return Object.keys(times).map(Number).sort(function (a, b) { return a - b; }).map(function (t) {
      var c = self.candles[t] || self.backfill[t];
      var i = self.indicators[t];
      var close = c ? c.close : i.close;
      return {
        t: t,
        open: c ? c.open : close,
        high: c ? c.high : close,
        low: c ? c.low : close,
        close: close,
        closed: c ? c.closed !== false : i.closed !== false,
        sma50: i && typeof i.sma50 === "number" ? i.sma50 : null,
        sma100: i && typeof i.sma100 === "number" ? i.sma100 : null,
        rsi: i && typeof i.rsi14 === "number" ? i.rsi14 : null,
      };
    });
  };

  /* Alerts, newest first. */
  Store.prototype.alertList = function () {
    var alerts = this.alerts;
    return Object.keys(alerts).map(function (id) { return alerts[id]; })
      .sort(function (a, b) { return b.ts - a.ts; });
  };

  /* Sectors by cap, largest first ("total" excluded: it heads the page). */
  Store.prototype.sectorList = function () {
    var sectors = this.sectors;
    return Object.keys(sectors).filter(function (id) { return id !== "total"; })
      .map(function (id) { return sectors[id]; })
      .sort(function (a, b) { return (b.cap_usd || 0) - (a.cap_usd || 0); });
  };

  /* Liquidation totals of one window for scopes with a prefix ("exchange:", "asset:"), biggest first. */
  Store.prototype.liquidationScopes = function (window, prefix) {
    var out = [];
    var liq = this.liquidations;
    Object.keys(liq).forEach(function (key) {
      var value = liq[key];
      if (key.indexOf(window + ":" + prefix) === 0) {
        out.push({ name: key.slice(window.length + 1 + prefix.length), value: value });
      }
    });
    return out.sort(function (a, b) { return b.value.total_usd - a.value.total_usd; });
  };

  /* The largest single liquidations reported by any window/scope, biggest first, deduped. */
  Store.prototype.largest = function (limit) {
    var seen = {};
    var out = [];
    var liq = this.liquidations;
    Object.keys(liq).forEach(function (key) {
      var big = liq[key].largest;
      if (!big || typeof big.notional_usd !== "number") return;
      var id = [big.exchange, big.instrument, big.ts, big.notional_usd, big.liquidated_side].join("|");
      if (seen[id]) return;
      seen[id] = true;
      out.push(big);
    });
    out.sort(function (a, b) { return b.notional_usd - a.notional_usd; });
    return out.slice(0, limit);
  };

  /* Members of a sector, worst 24 h change first (unknown changes last). */
  function membersWorstFirst(sector) {
    return (sector.members || []).slice().sort(function (a, b) {
      var x = typeof a.change_24h_pct === "number" ? a.change_24h_pct : Infinity;
      var y = typeof b.change_24h_pct === "number" ? b.change_24h_pct : Infinity;
      return x - y;
    });
  }

  root.cpStore = { Store: Store, GROUPS: GROUPS, matches: matches, membersWorstFirst: membersWorstFirst };
})(typeof window !== "undefined" ? window : this);
