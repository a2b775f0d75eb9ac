"""Gauges follow partition ownership: a revoked partition's lag and the market figures of the
single-partition stage it fed are no longer exported by this worker."""

from __future__ import annotations

from collections import namedtuple

from prometheus_client import REGISTRY

from services.processor import metrics

TP = namedtuple("TP", "topic partition")
MINUTES, LIQS = "app-asset-minutes", "app-liquidations"


def exported(name: str, **labels: str) -> bool:
    return REGISTRY.get_sample_value(name, labels) is not None


def test_revoked_partitions_stop_exporting_their_gauges() -> None:
    owned = [TP("trade-bars", 2), TP(MINUTES, 0), TP(LIQS, 0)]
    metrics.partitions_assigned(owned, MINUTES, LIQS, ["24h"], ["total"])
    metrics.CONSUMER_LAG.labels("trade-bars", "2").set(7)
    metrics.observe_sector({"sector": "total", "cap_usd": 3e12, "change_24h_pct": -6.4})
    metrics.observe_liquidations({"scope": "all", "window": "24h", "long_usd": 1.0, "short_usd": 2.0})
    assert exported("cryptopulse_processor_sector_cap_usd", sector="total")
    assert exported("cryptopulse_processor_rsi", series="total", interval="1d")

    metrics.partitions_revoked([TP("trade-bars", 2), TP(MINUTES, 0)], MINUTES, LIQS)
    assert not exported("cryptopulse_processor_consumer_lag_messages", topic="trade-bars", partition="2")
    assert not exported("cryptopulse_processor_sector_cap_usd", sector="total")
    assert not exported("cryptopulse_processor_sector_change_24h_ratio", sector="total")
    assert not exported("cryptopulse_processor_rsi", series="total", interval="1d")
    assert exported("cryptopulse_processor_liquidations_usd", window="24h", side="long")   # still owned

    metrics.partitions_revoked([TP(LIQS, 0)], MINUTES, LIQS)
    assert not exported("cryptopulse_processor_liquidations_usd", window="24h", side="long")
