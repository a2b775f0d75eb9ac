"""What the 'ingest stalled' alert reads, from real ingestor processes: a finished finite source that
holds exports it (the alert then stays silent), and live mode exports per-venue series only for the
venues it ingests (a venue not in use never looks stalled)."""

from __future__ import annotations

import time
from typing import Any

from services.common import topics
from services.common.broker import free_port
from services.ingestor.venues.registry import venue_ids
from tests.e2e.stack import SAMPLE
from tests.gateway.helpers import http_get
from tests.scenario.test_acceptance import read_topic


def scrape_until(port: int, proc: Any, wanted: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.process.poll() is None, proc.output()
        try:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        except OSError:
            body, status = b"", 0
        if status == 200 and wanted in body.decode():
            return body.decode()
        time.sleep(0.2)
    raise AssertionError(f"{wanted!r} not exported within {timeout} s:\n{proc.output()[-2000:]}")


def venue_series(body: str) -> set[str]:
    prefix = 'cryptopulse_ingestor_last_event_timestamp_seconds{venue="'
    return {line[len(prefix):].split('"', 1)[0] for line in body.splitlines() if line.startswith(prefix)}


def test_a_finished_replay_that_holds_exports_it(broker, services) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    ingestor = services("ingest", ["--source", f"replay:{SAMPLE}", "--speed", "max", "--hold",
                                   "--metrics-port", str(port), "--kafka", broker.bootstrap],
                        env={"CRYPTOPULSE_KAFKA_IDEMPOTENCE": "false"})
    body = scrape_until(port, ingestor, "cryptopulse_ingestor_source_finished 1.0")
    assert venue_series(body) == set(venue_ids())
    assert "holding" in ingestor.output()
    status = dict(read_topic(broker.bootstrap, topics.REFERENCE_STATUS))["ingest"]
    assert (status["kind"], status["source"]) == ("ingest", "replay") and str(SAMPLE) in status["description"]


def test_live_mode_seeds_only_the_venues_in_use(broker, services) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    nowhere = f"ws://127.0.0.1:{free_port()}"  # nothing listens: the venue keeps reconnecting
    ingestor = services("ingest", ["--source", "live", "--venues", "okx", "bybit", "--metrics-port", str(port),
                                   "--kafka", broker.bootstrap],
                        env={"CRYPTOPULSE_KAFKA_IDEMPOTENCE": "false", "CRYPTOPULSE_VENUE_URL_OVERRIDE": nowhere,
                             "CRYPTOPULSE_INGEST_REFRESH_INSTRUMENTS": "false"})
    body = scrape_until(port, ingestor, "cryptopulse_ingestor_source_finished 0.0")
    assert venue_series(body) == {"okx", "bybit"}
    assert 'cryptopulse_ingestor_reconnects_total{venue="binance-usdm"}' not in body
