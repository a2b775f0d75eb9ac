"""Venue id -> adapter, discovered from the modules of this package that export ``VENUE``.

A new venue only has to add its module; a module that fails to import is logged and skipped so
one broken adapter never takes the others down.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from functools import cache

from services.ingestor.venues import base

log = logging.getLogger("cryptopulse.ingestor.venues")

_NOT_ADAPTERS = frozenset(("base", "registry"))


@cache
def venues() -> dict[str, base.Venue]:
    """Every adapter of the package by its id, sorted by id."""
    package = importlib.import_module("services.ingestor.venues")
    found: dict[str, base.Venue] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name in _NOT_ADAPTERS or module_info.name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        except Exception:  # a broken adapter module must not stop the others
            log.exception("venue module %s failed to import; skipped", module_info.name)
            continue
        venue = getattr(module, "VENUE", None)
        if venue is not None:
            found[venue.id] = venue
    return dict(sorted(found.items()))


def get(venue_id: str) -> base.Venue:
    known = venues()
    if venue_id not in known:
        raise KeyError(f"unknown venue {venue_id!r}; known: {', '.join(known) or 'none'}")
    return known[venue_id]


def __getattr__(name: str) -> dict[str, base.Venue]:
    """``registry.VENUES``: the discovered adapters (computed on first access)."""
    if name == "VENUES":
        return venues()
    raise AttributeError(name)
