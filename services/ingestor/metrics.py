"""Prometheus metrics of the ingestor, declared once (names: cryptopulse_ingestor_<what>_<unit>).

Labels are bounded: ``venue`` is one of the adapters' ids, ``outcome``/``reason``/``kind`` are
fixed small sets, ``topic`` is a registry topic.
"""

import time

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import init_children

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

FRAMES = Counter("cryptopulse_ingestor_frames_total",
                 "Frames received, by venue and outcome (ok, ignored = acks/heartbeats, deadletter).",
                 ["venue", "outcome"])
EVENTS = Counter("cryptopulse_ingestor_events_total",
                 "Canonical events produced from frames, by venue and kind (trade, liquidation).",
                 ["venue", "kind"])
DEADLETTERS = Counter("cryptopulse_ingestor_deadletters_total",
                      "Frames sent to the dead-letter topic, by venue and reason class "
                      "(invalid_json, unknown_event, bad_field, bad_value, unknown_instrument, oversized).",
                      ["venue", "reason"])
RECONNECTS = Counter("cryptopulse_ingestor_reconnects_total", "Websocket reconnects, by venue.", ["venue"])
STALE_RESETS = Counter("cryptopulse_ingestor_stale_resets_total",
                       "Connections reset because a stream exceeded its staleness threshold.", ["venue"])
CONNECTIONS = Gauge("cryptopulse_ingestor_connections", "Open websocket connections, by venue.", ["venue"])
TRADE_GAPS = Counter("cryptopulse_ingestor_trade_gaps_total",
                     "Trade-id gaps detected (venues with sequential trade ids).", ["venue"])
MISSING_TRADES = Counter("cryptopulse_ingestor_missing_trades_total",
                         "Trade ids missing inside detected gaps.", ["venue"])
DUPLICATES = Counter("cryptopulse_ingestor_duplicates_total",
                     "Events dropped as duplicates (same venue and trade/liquidation id).", ["venue"])
PUBLISHED = Counter("cryptopulse_ingestor_messages_published_total",
                    "Messages acknowledged by Kafka, by topic.", ["topic"])
PUBLISH_ERRORS = Counter("cryptopulse_ingestor_publish_errors_total",
                         "Failed publish attempts (retried; never dropped silently).")
PRODUCER_BUFFER = Gauge("cryptopulse_ingestor_producer_buffer_messages",
                        "Messages waiting in the producer buffer.")
PRODUCER_OVERFLOW = Counter("cryptopulse_ingestor_producer_overflow_total",
                            "Messages that hit the full producer buffer (sources were paused; logged).")
PUBLISH_LATENCY = Histogram("cryptopulse_ingestor_publish_latency_seconds",
                            "Time from enqueue to Kafka acknowledgement.", buckets=LAG_BUCKETS)
EVENT_LAG = Histogram("cryptopulse_ingestor_event_lag_seconds",
                      "ts_recv - ts of events (exchange to receipt), by venue.", ["venue"], buckets=LAG_BUCKETS)
LAST_EVENT = Gauge("cryptopulse_ingestor_last_event_timestamp_seconds",
                   "Wall-clock time of the last event received, by venue.", ["venue"])
SOURCE_FINISHED = Gauge("cryptopulse_ingestor_source_finished",
                        "1 once a finite source (scenario, replay) has ended and the ingestor holds; "
                        "0 while it ingests (no event is expected from a finished source).")


def init_series(venues: tuple[str, ...], reasons: tuple[str, ...], topics: tuple[str, ...]) -> None:
    """Export every labeled series from start-up (rates and absence alerts need them). The last-event
    time starts at the start-up time, not 0, so 'ingest stalled' measures from when we began."""
    init_children(FRAMES, venues, ("ok", "ignored", "deadletter"))
    init_children(EVENTS, venues, ("trade", "liquidation"))
    init_children(DEADLETTERS, venues, reasons)
    for metric in (RECONNECTS, STALE_RESETS, CONNECTIONS, TRADE_GAPS, MISSING_TRADES, DUPLICATES):
        init_children(metric, venues)
    init_children(PUBLISHED, topics)
    now = time.time()
    for venue in venues:
        LAST_EVENT.labels(venue).set(now)
