"""Settings of ``cryptopulse backfill`` (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class BackfillSettings:
    backfill_venues: tuple[str, ...] = setting(
        ("binance-usdm", "bybit", "okx"), "Venues whose REST klines are backfilled; the first trading an asset gives its price history.")
    backfill_binance_url: str = setting("https://fapi.binance.com", "Binance USD-M REST root.")
    backfill_bybit_url: str = setting("https://api.bybit.com", "Bybit REST root.")
    backfill_okx_url: str = setting("https://www.okx.com", "OKX REST root.")
    backfill_minutes: int = setting(2880, "1-minute klines (trade bars) before the live start: 48 h.")
    backfill_hours: int = setting(720, "Hourly history candles: 30 days.")
    backfill_days: int = setting(260, "Daily history candles (SMA 200 needs 200).")
    backfill_chunk_minutes: int = setting(720, "1-minute klines are fetched and published in time chunks of this many minutes (all instruments of a chunk in minute order).")
    backfill_binance_weight_per_minute: float = setting(1200.0, "Request weight per minute used on Binance (its IP limit is 2400).")
    backfill_bybit_requests_per_second: float = setting(20.0, "Requests per second on Bybit (its IP limit is 600 per 5 s).")
    backfill_okx_requests_per_second: float = setting(8.0, "Requests per second on OKX (history-candles: 20 per 2 s).")
    backfill_concurrency: int = setting(4, "Requests in flight per venue.")
    backfill_timeout: float = setting(15.0, "Seconds one REST request may take.")
    backfill_attempts: int = setting(5, "Attempts per request (429/418 wait Retry-After, 5xx and no answer back off 1, 2, 4, ... s); a venue that never answers is skipped for the rest of the run.")
    backfill_on_start: bool = setting(True, "`up --source live` runs the backfill before the services start.")
