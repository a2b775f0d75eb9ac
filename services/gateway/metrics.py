"""Prometheus metrics of the gateway, declared once (names: cryptopulse_gateway_<what>_<unit>).

``family`` is a channel family (asset, sector, liquidations, candles, indicators, alerts);
``code`` a documented close code; never a client id or a channel name.
"""

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import init_children

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

CONNECTIONS = Gauge("cryptopulse_gateway_connections", "Open websocket connections.")
CONNECTS = Counter("cryptopulse_gateway_connects_total",
                   "Connection attempts by outcome (accepted, rejected_auth, rejected_limit, rejected_origin).",
                   ["outcome"])
DISCONNECTS = Counter("cryptopulse_gateway_disconnects_total",
                      "Disconnects by close code (a code the gateway does not document is counted as 'other').",
                      ["code"])
SUBSCRIPTIONS = Gauge("cryptopulse_gateway_subscriptions", "Active subscriptions by channel family.", ["family"])
MESSAGES_SENT = Counter("cryptopulse_gateway_messages_sent_total",
                        "Messages queued to clients, by channel family (snapshot, update, control).",
                        ["family"])
BYTES_SENT = Counter("cryptopulse_gateway_bytes_sent_total", "Bytes of messages sent to clients.")
CONFLATED = Counter("cryptopulse_gateway_conflated_total",
                    "State updates replaced by a newer one in a client's queue, by family.", ["family"])
SLOW_DISCONNECTS = Counter("cryptopulse_gateway_slow_disconnects_total",
                           "Clients disconnected because their event queue overflowed.")
AUTH_FAILURES = Counter("cryptopulse_gateway_auth_failures_total", "Rejected tokens and forbidden subscriptions.")
LIMIT_VIOLATIONS = Counter("cryptopulse_gateway_limit_violations_total",
                           "Limit violations by limit (connections, subscriptions, frame_size, rate, bytes).", ["limit"])
CLIENT_ERRORS = Counter("cryptopulse_gateway_client_errors_total",
                        "Error frames sent, by error code.", ["error"])
QUEUE_DEPTH = Gauge("cryptopulse_gateway_send_queue_messages", "Messages waiting in all client send queues.")
RECORDS = Counter("cryptopulse_gateway_kafka_records_total", "Records consumed from derived topics, by family.",
                  ["family"])
CONSUMER_LAG = Gauge("cryptopulse_gateway_consumer_lag_messages",
                     "Messages not yet consumed, by topic and partition.", ["topic", "partition"])
SNAPSHOT_AGE = Gauge("cryptopulse_gateway_snapshot_age_seconds",
                     "Age of the newest record seen, by channel family.", ["family"])
BROADCAST = Histogram("cryptopulse_gateway_broadcast_seconds",
                      "Time to fan one update out to all its subscribers' queues.", buckets=LATENCY_BUCKETS)
DELIVERY_LATENCY = Histogram("cryptopulse_gateway_delivery_latency_seconds",
                             "Kafka record timestamp to the message being written to a client.",
                             buckets=LATENCY_BUCKETS)
DEADLETTERS = Counter("cryptopulse_gateway_deadletters_total",
                      "Derived records that could not be served (no key, not JSON), sent to the dead-letter topic, "
                      "by family.", ["family"])


CONNECT_OUTCOMES = ("accepted", "rejected_auth", "rejected_limit", "rejected_origin")
LIMITS = ("connections", "subscriptions", "frame_size", "rate", "bytes")
KNOWN_CLOSE_CODES: set[int] = {1000, 1001, 1006}


def close_code_label(code: int | None) -> str:
    """The label of a disconnect: a documented code, or 'other' (a client may send any code)."""
    code = 1006 if code is None else code
    return str(code) if code in KNOWN_CLOSE_CODES else "other"


def init_series(families: tuple[str, ...], close_codes: tuple[int, ...], error_codes: tuple[str, ...]) -> None:
    """Export every labeled series at 0 from start-up, so rates and absence alerts see them."""
    init_children(CONNECTS, CONNECT_OUTCOMES)
    KNOWN_CLOSE_CODES.update(close_codes)
    init_children(DISCONNECTS, [*(str(code) for code in sorted(KNOWN_CLOSE_CODES)), "other"])
    for metric in (SUBSCRIPTIONS, MESSAGES_SENT, CONFLATED, RECORDS, DEADLETTERS):
        init_children(metric, families)
    init_children(LIMIT_VIOLATIONS, LIMITS)
    init_children(CLIENT_ERRORS, error_codes)
