"""Ingestor settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class IngestorSettings:
    ingestor_metrics_port: int = setting(9301, "Ingestor Prometheus /metrics port.")
    ingest_source: str = setting(
        "scenario",
        "What to ingest: 'scenario' (built-in 2025-01-27 replay), 'replay:PATH' (recorded frames) "
        "or 'live' (exchange websockets).",
    )
    replay_speed: str = setting("max", "Replay speed: 1 = real time, N = N x faster, 'max' = as fast as possible.")
    hold: bool = setting(True, "After a finite source ends, stay up (serving metrics) instead of exiting.")
    ingest_venues: tuple[str, ...] = setting((), "Venue ids to ingest (live/record); empty = every adapter.")
    ingest_symbols: tuple[str, ...] = setting(
        (), "Venue-native symbols to subscribe to (live/record); empty = every listed instrument of the snapshot.")
    ingest_refresh_instruments: bool = setting(True, "Live mode: refresh instrument metadata from the venues' REST APIs.")
    max_frame_bytes: int = setting(262_144, "Frames larger than this are dead-lettered as oversized.")
    keep_raw_frame: bool = setting(False, "Keep the raw frame in each event (field 'raw') for audit.")
    dedupe_capacity: int = setting(500_000, "Event ids remembered for duplicate suppression.")
    dedupe_window_seconds: float = setting(900.0, "How long (receipt time) an event id is remembered.")
    bar_interval_ms: int = setting(250, "Micro-bars close at most this long (receipt time) after their first trade.")
    producer_buffer_messages: int = setting(
        200_000, "Messages not yet acknowledged by Kafka before sources are paused (backpressure).")
    producer_chunk_messages: int = setting(16_384, "Messages handed to Kafka per send round.")
    producer_inflight_chunks: int = setting(4, "Send rounds awaiting acknowledgement at once.")
    producer_retry_backoff_max: float = setting(5.0, "Longest pause (s) between retries of a failed send.")
    reconnect_backoff_initial: float = setting(0.5, "First reconnect backoff cap (s); full jitter below it.")
    reconnect_backoff_max: float = setting(30.0, "Largest reconnect backoff cap (s).")
    connect_timeout: float = setting(10.0, "Websocket connect/handshake timeout (s).")
    stale_trades_seconds: float | None = setting(None, "Override of the venues' trade-stream staleness threshold (s).")
    stale_liquidations_seconds: float | None = setting(
        None, "Override of the venues' liquidation-stream staleness threshold (s).")
    rotate_after_seconds: float | None = setting(None, "Override of the venues' connection lifetime before rotation (s).")
    venue_url_override: str | None = setting(
        None, "Websocket base URL for every venue, or per venue as 'venue=URL,venue=URL' (tests, proxies).")
