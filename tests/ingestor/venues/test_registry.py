"""The explicit venue map: every adapter module of the package is mapped, each venue owns its
endpoints, and a broken adapter module fails loudly instead of being skipped."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

from services.ingestor import venues as package
from services.ingestor.instruments import load_instruments, snapshot_venues
from services.ingestor.venues import registry
from services.ingestor.venues.base import UNKNOWN_INSTRUMENT, FrameError
from tests.ingestor.frames import agg_trade

NOT_ADAPTERS = {"base", "common", "registry"}


def test_every_venue_module_is_in_the_map() -> None:
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)} - NOT_ADAPTERS
    mapped = {adapter.__module__.rsplit(".", 1)[1] for adapter in registry.ADAPTERS.values()}
    assert mapped == modules
    assert registry.venue_ids() == tuple(sorted(registry.ADAPTERS))
    built = registry.venues(load_instruments)
    assert list(built) == list(registry.venue_ids()) and all(built[v].id == v for v in built)
    assert list(registry.venues(load_instruments, ("okx", "bybit"))) == ["okx", "bybit"]


def test_adapters_parse_with_the_table_they_are_handed() -> None:
    frame = agg_trade("BTCUSDT")
    assert registry.get("binance-usdm", load_instruments("binance-usdm")).parse(frame, 1)[0].instrument == \
        "BTC-USDT-PERP"
    with pytest.raises(FrameError) as caught:
        registry.get("binance-usdm", {}).parse(frame, 1)
    assert caught.value.reason_class == UNKNOWN_INSTRUMENT
    with pytest.raises(KeyError, match="unknown venue"):
        registry.get("nowhere", {})


def test_each_venue_owns_its_endpoints_and_has_snapshot_instruments() -> None:
    for venue in registry.ADAPTERS.values():
        assert venue.rules.url.startswith("wss://"), venue.id
        assert venue.rest_instrument_urls and all(url.startswith("https://") for url in venue.rest_instrument_urls)
        assert venue.parse_rest_instruments({}) == [] and venue.parse_rest_instruments([]) == []
    assert set(registry.ADAPTERS) <= set(snapshot_venues())


def test_a_broken_adapter_module_fails_the_registry_loudly() -> None:
    code = ("import sys; sys.modules['services.ingestor.venues.gate'] = None\n"
            "import services.ingestor.venues.registry")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "services.ingestor.venues.gate" in proc.stderr.splitlines()[-1]
