"""One venue's kline client: the venue's windows, its throttle and retries, its unreachable state."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from services.common.errors import StartupError
from services.common.http import HttpError, NoAnswer, RetryPolicy, Throttle, get_json
from services.ingestor.backfill.klines import APIS, INTERVAL_MS, Kline, KlineApi, VenueRefusal
from services.ingestor.backfill.plan import windows
from services.ingestor.backfill.settings import BackfillSettings

log = logging.getLogger("cryptopulse.backfill")


class VenueDown(HttpError):
    """A request not sent: its venue did not answer at all earlier in this run."""


class VenueClient:
    """Klines of one venue: windows of the venue's page size, its throttle, retries."""

    def __init__(self, api: KlineApi, root: str, throttle: Throttle, policy: RetryPolicy, concurrency: int,
                 executor: ThreadPoolExecutor) -> None:
        self.api = api
        self.root = root.rstrip("/")
        self.throttle = throttle
        self.policy = policy
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.executor = executor
        self.requests = 0
        self.down: str | None = None

    def _hold(self, _status: int, seconds: float) -> None:
        self.throttle.pause(seconds)

    def _fetch(self, url: str, interval: str, start: int, end: int, now: int) -> list[Kline]:
        """GET, decode and parse in the worker thread (parsing thousands of rows is CPU work). A
        venue that did not answer at all through every retry is unreachable: the rest of the run
        skips it at once instead of retrying each of its instruments (offline start stays quick)."""
        if self.down is not None:
            raise VenueDown(url, f"skipped: {self.down}")
        try:
            body = get_json(url, None, self.policy, time.sleep, on_wait=self._hold)
        except NoAnswer as exc:
            if self.down is None:
                self.down = f"{self.api.venue} unreachable ({exc})"
                log.warning("backfill: %s; its other requests are skipped in this run", self.down)
            raise
        return self.api.closed(self.api.parse(url, body), interval, start, end, now)

    async def _window(self, symbol: str, interval: str, start: int, end: int, now: int) -> list[Kline]:
        """One window; a venue code meaning "too many requests" backs off (holding the venue) and retries."""
        url = self.api.url(self.root, symbol, interval, start, end)
        loop = asyncio.get_running_loop()
        attempt = 1
        while True:
            async with self.slots:
                await self.throttle.acquire(self.api.weight(start, end, interval))
                self.requests += 1
                try:
                    return await loop.run_in_executor(self.executor, self._fetch, url, interval, start, end, now)
                except VenueRefusal as exc:
                    if not exc.retryable or attempt >= self.policy.attempts:
                        raise
                    wait = self.policy.backoff(attempt)
                    log.warning("%s; retrying in %.1f s", exc, wait)
                    self.throttle.pause(wait)
            attempt += 1

    async def klines(self, symbol: str, interval: str, start: int, end: int, now: int) -> list[Kline]:
        out: list[Kline] = []
        for a, b in windows(start, end, self.api.max_limit * INTERVAL_MS[interval]):
            out.extend(await self._window(symbol, interval, a, b, now))
        return out


def make_clients(settings: BackfillSettings, executor: ThreadPoolExecutor) -> dict[str, VenueClient]:
    policy = RetryPolicy(attempts=max(1, settings.backfill_attempts), timeout=settings.backfill_timeout)
    roots = {"binance-usdm": settings.backfill_binance_url, "bybit": settings.backfill_bybit_url,
             "okx": settings.backfill_okx_url}
    throttles = {"binance-usdm": Throttle(settings.backfill_binance_weight_per_minute, 60.0),
                 "bybit": Throttle(settings.backfill_bybit_requests_per_second, 1.0),
                 "okx": Throttle(settings.backfill_okx_requests_per_second, 1.0)}
    unknown = [v for v in settings.backfill_venues if v not in APIS]
    if unknown:
        raise StartupError(f"no kline backfill for venue(s) {', '.join(unknown)}; known: {', '.join(APIS)}")
    return {v: VenueClient(APIS[v], roots[v], throttles[v], policy, settings.backfill_concurrency, executor)
            for v in settings.backfill_venues}
