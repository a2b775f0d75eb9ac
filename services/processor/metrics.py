"""Prometheus metrics of the processor, declared once (names: cryptopulse_processor_<what>_<unit>).

``stream`` is one of the processor's input streams (trade_bars, liquidations, assets,
candle_history, asset_minutes); ``outcome`` is applied, duplicate, late_dropped or deadletter.
"""

import math
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import init_children

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

EVENTS = Counter("cryptopulse_processor_events_total",
                 "Input messages by stream and outcome (applied, duplicate, late_dropped, deadletter).",
                 ["stream", "outcome"])
TRADES = Counter("cryptopulse_processor_trades_total", "Trades applied (counted inside applied trade bars).")
DEADLETTERS = Counter("cryptopulse_processor_deadletters_total",
                      "Input messages sent to the dead-letter topic, by stream.", ["stream"])
UPDATES = Counter("cryptopulse_processor_updates_emitted_total",
                  "Derived updates produced, by topic.", ["topic"])
ALERTS = Counter("cryptopulse_processor_alerts_total", "Alerts emitted, by kind.", ["kind"])
PROCESSING = Histogram("cryptopulse_processor_processing_seconds",
                       "Time spent processing one batch of input, by stream.", ["stream"],
                       buckets=LATENCY_BUCKETS)
HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
HANDLER = Histogram("cryptopulse_processor_handler_seconds",
                    "Time one slice of a handler held the event loop (work between two yields), by handler.",
                    ["handler"], buckets=HANDLER_BUCKETS)
EVENT_LAG = Histogram("cryptopulse_processor_event_lag_seconds",
                      "Wall-clock from an event's ts_recv to the derived update being produced.",
                      buckets=LATENCY_BUCKETS)
CONSUMER_LAG = Gauge("cryptopulse_processor_consumer_lag_messages",
                     "Messages not yet consumed, by topic and partition.", ["topic", "partition"])
STATE_KEYS = Gauge("cryptopulse_processor_state_keys", "Keys held in each state table.", ["table"])
SECTOR_HELD = Gauge("cryptopulse_processor_sector_held_records",
                    "Minute records the sector stage holds until every source partition has sent its bars "
                    "up to their event time.")
SECTOR_FORCED = Counter("cryptopulse_processor_sector_forced_total",
                        "Minute records the sector stage applied before every source reached their event "
                        "time (its hold bound was exceeded): figures of that moment may miss bars.")

# Market figures for dashboards (bounded labels: ``sector`` is a sector id of the asset universe
# including ``total``; ``window`` 1h/4h/12h/24h; ``side`` long/short; ``series`` total or a sector id).
SECTOR_CAP = Gauge("cryptopulse_processor_sector_cap_usd",
                   "Market cap of each sector (and sector=\"total\"), USD.", ["sector"])
SECTOR_CHANGE = Gauge("cryptopulse_processor_sector_change_24h_ratio",
                      "24 h change of each sector cap (and total) as a ratio (-0.064 = -6.4 %).", ["sector"])
LIQUIDATIONS_USD = Gauge("cryptopulse_processor_liquidations_usd",
                         "Liquidated notional of scope all in each rolling window, by closed position side, USD.",
                         ["window", "side"])
RSI = Gauge("cryptopulse_processor_rsi",
            "RSI(14) of a cap series (total or a sector id) per candle interval (1h, 1d), 0-100; "
            "NaN until the series has 15 closes.",
            ["series", "interval"])

HANDLERS = ("trade_bars", "asset_minutes", "liquidation_totals", "flush")
STREAMS = ("trade_bars", "liquidations", "assets", "candle_history", "asset_minutes")
OUTCOMES = ("applied", "duplicate", "late_dropped", "deadletter")
TABLES = ("asset-buckets", "liquidations", "sector-buckets", "signals")
RSI_INTERVALS = ("1h", "1d")
SIDES = ("long", "short")


def init_series(update_topics: Iterable[str], alert_kinds: Iterable[str], windows: Iterable[str],
                cap_series: Iterable[str]) -> None:
    """Export every labeled series with a known label set from start-up (at 0). RSI starts as NaN
    (not defined yet); the sector gauges appear with their first value (0 would be a false reading)."""
    init_children(EVENTS, STREAMS, OUTCOMES)
    init_children(DEADLETTERS, STREAMS)
    init_children(PROCESSING, STREAMS)
    init_children(HANDLER, HANDLERS)
    init_children(UPDATES, tuple(update_topics))
    init_children(ALERTS, tuple(alert_kinds))
    init_children(STATE_KEYS, TABLES)
    init_children(LIQUIDATIONS_USD, tuple(windows), SIDES)
    for series in cap_series:
        for interval in RSI_INTERVALS:
            RSI.labels(series, interval).set(math.nan)


def observe_sector(value: dict[str, Any]) -> None:
    SECTOR_CAP.labels(value["sector"]).set(value["cap_usd"])
    change = value.get("change_24h_pct")
    if change is not None:
        SECTOR_CHANGE.labels(value["sector"]).set(change / 100.0)


def observe_liquidations(value: dict[str, Any]) -> None:
    """Totals of scope ``all`` only (per-asset/exchange scopes would make the labels unbounded)."""
    if value["scope"] == "all":
        LIQUIDATIONS_USD.labels(value["window"], "long").set(value["long_usd"])
        LIQUIDATIONS_USD.labels(value["window"], "short").set(value["short_usd"])


def observe_indicators(value: dict[str, Any], cap_series: Iterable[str]) -> None:
    """RSI of the cap series (total and sectors; bounded) on the 1h/1d intervals."""
    rsi = value.get("rsi14")
    if rsi is not None and value["interval"] in RSI_INTERVALS and value["series"] in cap_series:
        RSI.labels(value["series"], value["interval"]).set(rsi)


@contextmanager
def handler_slice(handler: str) -> Iterator[None]:
    """Time a piece of handler work that runs without yielding to the event loop."""
    started = time.perf_counter()
    try:
        yield
    finally:
        HANDLER.labels(handler).observe(time.perf_counter() - started)


def drop_lag(topic: str, partition: int) -> None:
    """Stop exporting the lag of a partition this worker no longer consumes."""
    try:
        CONSUMER_LAG.remove(topic, str(partition))
    except KeyError:
        pass


def partitions_revoked(revoked: Iterable[Any], sector_topic: str, liquidation_topic: str) -> None:
    """A worker that loses partitions stops exporting what it measured from them: their lag, and
    the market figures of the single-partition stage they fed (sector caps and RSI, liquidations);
    max()/sum() panels and the lag rule must not read a stale value from the previous owner."""
    for tp in revoked:
        drop_lag(tp.topic, tp.partition)
        if tp.topic == sector_topic:
            SECTOR_CAP.clear()
            SECTOR_CHANGE.clear()
            RSI.clear()
        elif tp.topic == liquidation_topic:
            LIQUIDATIONS_USD.clear()


def partitions_assigned(assigned: Iterable[Any], sector_topic: str, liquidation_topic: str,
                        windows: Iterable[str], cap_series: Iterable[str]) -> None:
    """Export the series of newly owned partitions from their assignment (lag at 0, RSI NaN)."""
    for tp in assigned:
        CONSUMER_LAG.labels(tp.topic, str(tp.partition))
        if tp.topic == sector_topic:
            for series in cap_series:
                for interval in RSI_INTERVALS:
                    RSI.labels(series, interval).set(math.nan)
        elif tp.topic == liquidation_topic:
            init_children(LIQUIDATIONS_USD, tuple(windows), SIDES)


def observe_sector_hold(held: int, forced: int) -> None:
    """The sector stage's held records, and its forced releases since the last call."""
    SECTOR_HELD.set(held)
    SECTOR_FORCED.inc(forced)
