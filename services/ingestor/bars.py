"""Micro-bars: exact aggregates of consecutive trades of one instrument (the processor's hot path).

A bar holds the trades of one instrument that fall in one event-time minute and arrived within
``max_age_ms`` of receipt time of its first trade. It is closed when a trade of another minute
arrives, when a trade arrives ``max_age_ms`` or more after the bar opened, or by :meth:`due`
(called on a timer with the wall clock) and :meth:`close_all` (end of input, shutdown).
Every trade is in exactly one bar, so sums over bars equal sums over trades.
"""

from __future__ import annotations

from services.common.clock import MINUTE_MS
from services.common.events import Trade, TradeBar


class _Open:
    __slots__ = ("first", "count", "volume", "notional", "buy_notional", "high", "low", "close",
                 "last_id", "ts_last", "ts_recv", "opened_recv")

    def __init__(self, trade: Trade) -> None:
        self.first = trade
        self.count = 1
        self.volume = trade.size
        self.notional = trade.notional_usd
        self.buy_notional = trade.notional_usd if trade.side == "buy" else 0.0
        self.high = self.low = self.close = trade.price
        self.last_id = trade.trade_id
        self.ts_last = trade.ts
        self.ts_recv = trade.ts_recv
        self.opened_recv = trade.ts_recv

    def add(self, trade: Trade) -> None:
        self.count += 1
        self.volume += trade.size
        self.notional += trade.notional_usd
        if trade.side == "buy":
            self.buy_notional += trade.notional_usd
        price = trade.price
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.last_id = trade.trade_id
        if trade.ts > self.ts_last:
            self.ts_last = trade.ts
        self.ts_recv = trade.ts_recv

    def bar(self) -> TradeBar:
        first = self.first
        return TradeBar(
            id=f"{first.exchange}:{first.instrument}:{first.trade_id}:{self.last_id}:{self.count}",
            exchange=first.exchange, instrument=first.instrument, base=first.base, quote=first.quote,
            market=first.market, minute=first.ts - first.ts % MINUTE_MS, count=self.count,
            volume=self.volume, notional_usd=self.notional, buy_notional_usd=self.buy_notional,
            open=first.price, high=self.high, low=self.low, close=self.close,
            first_trade_id=first.trade_id, last_trade_id=self.last_id, ts_first=first.ts,
            ts_last=self.ts_last, ts_recv=self.ts_recv,
        )


class BarBuilder:
    def __init__(self, max_age_ms: int = 250) -> None:
        self.max_age_ms = max_age_ms
        self._open: dict[tuple[str, str], _Open] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, trade: Trade) -> TradeBar | None:
        """Add a trade; returns the bar it closed, if any."""
        key = (trade.exchange, trade.instrument)
        current = self._open.get(key)
        if current is None:
            self._open[key] = _Open(trade)
            return None
        if (trade.ts - trade.ts % MINUTE_MS != current.first.ts - current.first.ts % MINUTE_MS
                or trade.ts_recv - current.opened_recv >= self.max_age_ms):
            self._open[key] = _Open(trade)
            return current.bar()
        current.add(trade)
        return None

    def due(self, now_ms: int) -> list[TradeBar]:
        """Close the bars opened ``max_age_ms`` or more before ``now_ms`` (receipt clock)."""
        horizon = now_ms - self.max_age_ms
        closing = [key for key, bar in self._open.items() if bar.opened_recv <= horizon]
        return [self._open.pop(key).bar() for key in closing]

    def close_all(self) -> list[TradeBar]:
        bars = [bar.bar() for bar in self._open.values()]
        self._open.clear()
        return bars
