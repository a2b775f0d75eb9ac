"""The I/O shell of the reference data: publish a file (``assets load``), refresh from the provider
(``assets refresh``, and every hour under ``up --source live``), and the status record clients read.

A refresh reads the assets topic as it stands, fetches everything it needs from the provider, and
publishes only when every request succeeded: a failed refresh (HTTP error after the retries,
malformed JSON, a bad category map) publishes nothing but the reason in the status record, so the
previous data (or the bundled snapshot) stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common import topics
from services.common.assets import BUNDLED_ASSETS, read_data
from services.common.clock import now_ms
from services.common.compacted import publish, read_table
from services.common.errors import StartupError
from services.common.http import HttpError, RetryPolicy
from services.common.settings import KafkaSettings
from services.reference.coingecko import PER_PAGE_MAX, CoinGecko
from services.reference.mapping import CategoryMap, load_map
from services.reference.market import MarketEntry, Provider
from services.reference.refresh import RecordError, RefreshPlan, check_record, plan_refresh
from services.reference.settings import ReferenceSettings

log = logging.getLogger("cryptopulse.reference")

STATUS_KEY = "assets"
PROVIDERS: dict[str, type[CoinGecko]] = {"coingecko": CoinGecko}


class RefreshError(StartupError):
    """A refresh that published nothing; the message says why (the previous data stays)."""


@dataclass(frozen=True)
class Snapshot:
    records: list[dict[str, Any]]
    as_of: str
    source: str


def read_snapshot(path: Path = BUNDLED_ASSETS) -> Snapshot:
    """The records of an assets file (the bundled offline snapshot by default), checked."""
    try:
        data = read_data(path)
        records = [check_record(r) for r in data["assets"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StartupError(f"assets file {path}: {exc}") from None
    return Snapshot(records, str(data.get("as_of", "unknown")), "bundled" if Path(path) == BUNDLED_ASSETS
                    else f"file {Path(path).name}")


def status_record(source: str, as_of: str, universe: dict[str, dict[str, Any]], changed: int,
                  global_cap: float | None = None, fetched_cap: float | None = None,
                  last_error: str | None = None) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for record in universe.values():
        for sector in record.get("sectors", ()):
            counts[sector] = counts.get(sector, 0) + 1
    coverage = 100.0 * fetched_cap / global_cap if global_cap and fetched_cap else None
    return {"kind": STATUS_KEY, "source": source, "as_of": as_of, "assets": len(universe),
            "sectors": dict(sorted(counts.items())), "changed": changed, "global_market_cap_usd": global_cap,
            "coverage_pct": coverage, "last_error": last_error, "ts": now_ms()}


async def load_file(kafka: KafkaSettings, path: Path = BUNDLED_ASSETS) -> int:
    """Publish every record of an assets file and its as-of status; returns how many records."""
    snap = read_snapshot(path)
    universe = {r["asset"]: r for r in snap.records}
    status = status_record(snap.source, snap.as_of, universe, len(snap.records))
    await publish(kafka, [*((topics.ASSETS, r["asset"], r) for r in snap.records),
                          (topics.REFERENCE_STATUS, STATUS_KEY, status)])
    return len(snap.records)


async def assets_status(kafka: KafkaSettings) -> dict[str, Any] | None:
    """The status record clients show (source and as-of of the supplies in force), if any."""
    table = await read_table(kafka, topics.REFERENCE_STATUS, prefix=STATUS_KEY)
    status = table.get(STATUS_KEY)
    return status if isinstance(status, dict) else None


def spacing(per_minute: float, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> Callable[[], None]:
    """A blocking pacer: calls at least 60/per_minute seconds apart (the provider's budget)."""
    gap = 60.0 / per_minute if per_minute > 0 else 0.0
    last = [float("-inf")]

    def pace() -> None:
        wait = last[0] + gap - clock()
        if wait > 0:
            sleep(wait)
        last[0] = clock()

    return pace


def make_provider(settings: ReferenceSettings) -> Provider:
    cls = PROVIDERS.get(settings.assets_provider)
    if cls is None:
        raise StartupError(f"unknown assets provider {settings.assets_provider!r}; known: {', '.join(PROVIDERS)}")
    policy = RetryPolicy(timeout=settings.assets_timeout)
    return cls(settings.assets_provider_url, settings.assets_api_key, policy,
               spacing(settings.assets_requests_per_minute))


@dataclass
class Fetched:
    top: list[MarketEntry]
    members: dict[str, list[MarketEntry]]
    truncated: set[str]
    global_cap: float | None


def fetch_all(provider: Provider, cmap: CategoryMap, top_n: int, category_limit: int) -> Fetched:
    """Every request a refresh needs (blocking); any failure raises before anything is published."""
    top = provider.top(top_n)
    members: dict[str, list[MarketEntry]] = {}
    truncated: set[str] = set()
    for category in cmap.categories():
        members[category] = provider.category(category, category_limit)
        if len(members[category]) >= category_limit:
            truncated.add(category)
    try:
        global_cap = provider.global_market_cap()
    except HttpError as exc:  # optional figure: the refresh stands without it
        log.warning("global market cap unavailable (%s); coverage not computed", exc)
        global_cap = None
    return Fetched(top, members, truncated, global_cap)


async def refresh(kafka: KafkaSettings, settings: ReferenceSettings, provider: Provider | None = None,
                  cmap: CategoryMap | None = None) -> RefreshPlan:
    """One refresh; raises :class:`RefreshError` (after recording it in the status) on failure."""
    current = {a: r for a, r in (await read_table(kafka, topics.ASSETS)).items() if isinstance(r, dict)}
    previous = await assets_status(kafka) or {}
    try:
        cmap = cmap or load_map(settings.assets_category_map)
        provider = provider or make_provider(settings)
        limit = max(1, min(settings.assets_category_limit, PER_PAGE_MAX * 4))
        fetched = await asyncio.to_thread(fetch_all, provider, cmap, max(1, settings.assets_top_n), limit)
    except (HttpError, StartupError) as exc:
        status = status_record(previous.get("source", "none"), previous.get("as_of", "unknown"), current, 0,
                               previous.get("global_market_cap_usd"), None, str(exc))
        status["coverage_pct"] = previous.get("coverage_pct")
        await publish(kafka, [(topics.REFERENCE_STATUS, STATUS_KEY, status)])
        raise RefreshError(f"assets refresh failed, previous data kept: {exc}") from None
    as_of = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan = plan_refresh(current, fetched.top, fetched.members, fetched.truncated, cmap, as_of, provider.name)
    try:
        changed = [check_record(r) for r in plan.changed]
    except RecordError as exc:  # cannot happen with the parser's checks; never publish a bad record
        raise RefreshError(f"assets refresh produced a bad record: {exc}") from None
    status = status_record(provider.name, as_of, plan.universe, len(changed), fetched.global_cap,
                           plan.fetched_cap_usd)
    await publish(kafka, [*((topics.ASSETS, r["asset"], r) for r in changed),
                          (topics.REFERENCE_STATUS, STATUS_KEY, status)])
    return plan


def describe(plan: RefreshPlan) -> str:
    shown = ", ".join(f"{s} {n}" for s, n in plan.sector_counts().items())
    return (f"{len(plan.changed)} records published ({plan.added} new, {plan.updated} updated, "
            f"{plan.unchanged} unchanged, {plan.kept} kept as they were); {len(plan.universe)} assets; "
            f"sectors: {shown}")


async def refresh_forever(kafka: KafkaSettings, settings: ReferenceSettings, stop: asyncio.Event,
                          say: Callable[[str], None] = log.info) -> None:
    """Every ``assets_refresh_interval`` seconds until ``stop`` is set, refresh (the caller made the
    first refresh at start); a failed refresh is reported and tried again at the next interval."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(1.0, settings.assets_refresh_interval))
            return
        except TimeoutError:
            pass
        try:
            plan = await refresh(kafka, settings)
            say(f"reference data refreshed from {settings.assets_provider}: {describe(plan)}")
        except RefreshError as exc:
            say(str(exc))
