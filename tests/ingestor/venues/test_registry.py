"""The explicit venue map: every adapter module of the package is mapped, each venue owns its
endpoints, and a broken adapter module fails loudly instead of being skipped."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

from services.ingestor import venues as package
from services.ingestor.instruments import snapshot_venues
from services.ingestor.venues import registry

NOT_ADAPTERS = {"base", "common", "registry"}


def test_every_venue_module_is_in_the_map() -> None:
    modules = {info.name for info in pkgutil.iter_modules(package.__path__)} - NOT_ADAPTERS
    mapped = {type(venue).__module__.rsplit(".", 1)[1] for venue in registry.VENUES.values()}
    assert mapped == modules
    assert list(registry.VENUES) == sorted(registry.VENUES)
    assert all(registry.get(venue_id).id == venue_id for venue_id in registry.VENUES)


def test_each_venue_owns_its_endpoints_and_has_snapshot_instruments() -> None:
    for venue in registry.VENUES.values():
        assert venue.rules.url.startswith("wss://"), venue.id
        assert venue.rest_instrument_urls and all(url.startswith("https://") for url in venue.rest_instrument_urls)
        assert venue.parse_rest_instruments({}) == [] and venue.parse_rest_instruments([]) == []
    assert set(registry.VENUES) <= set(snapshot_venues())


def test_a_broken_adapter_module_fails_the_registry_loudly() -> None:
    code = ("import sys; sys.modules['services.ingestor.venues.gate'] = None\n"
            "import services.ingestor.venues.registry")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "services.ingestor.venues.gate" in proc.stderr.splitlines()[-1]
