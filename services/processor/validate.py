"""Decoding and checking of the processor's inputs (pure): a value or a dead-letter reason."""

from __future__ import annotations

from typing import Any

import orjson

from services.common.events import InvalidEvent, Liquidation, TradeBar
from services.processor.reference import Universe
from services.processor.timeutil import USD_QUOTES, minute_of


def _decode(raw: bytes | None) -> Any:
    if raw is None:
        raise InvalidEvent("empty message")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from exc


def _check_asset(base: str, quote: str, universe: Universe) -> str:
    asset = base.upper()
    if universe.get(asset) is None:
        raise InvalidEvent(f"unknown asset {asset!r} (not in the asset universe)")
    if quote.upper() not in USD_QUOTES:
        raise InvalidEvent(f"quote {quote!r} is not a USD quote ({', '.join(sorted(USD_QUOTES))})")
    return asset


def parse_bar(raw: bytes | None, universe: Universe) -> TradeBar:
    """A usable trade bar (``base`` upper-cased) or :class:`InvalidEvent` with the reason."""
    bar = TradeBar.from_dict(_decode(raw))
    bar.base = _check_asset(bar.base, bar.quote, universe)
    if bar.ts_first > bar.ts_last:
        raise InvalidEvent("ts_first is after ts_last")
    if minute_of(bar.ts_first) != bar.minute or minute_of(bar.ts_last) != bar.minute:
        raise InvalidEvent("bar trades are not all inside its minute")
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise InvalidEvent("bar OHLC is inconsistent (low <= open, close <= high)")
    if bar.buy_notional_usd > bar.notional_usd * (1 + 1e-9):
        raise InvalidEvent("buy_notional_usd exceeds notional_usd")
    return bar


def parse_liquidation(raw: bytes | None, universe: Universe) -> Liquidation:
    """A usable liquidation (``base`` upper-cased) or :class:`InvalidEvent` with the reason."""
    liq = Liquidation.from_dict(_decode(raw))
    liq.base = _check_asset(liq.base, liq.quote, universe)
    return liq
