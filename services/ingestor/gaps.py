"""Trade-id gap detection for venues whose trade ids are sequential per instrument.

Fed with deduplicated trades in arrival order. A trade covers ``span`` consecutive ids ending at
its own (OKX aggregates the fills of one taker order: ``tradeId`` 123 with ``count`` 3 covers
121-123; elsewhere the span is 1). A trade whose first covered id is more than one above the
highest id seen for its instrument reveals ``first - last - 1`` missing trades; a lower id (late
or out-of-order delivery) is not a gap and does not move the high-water mark back.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.events import Trade


@dataclass(slots=True)
class TradeGap:
    exchange: str
    instrument: str
    after_trade_id: str
    before_trade_id: str
    missing: int
    ts: int
    ts_recv: int


SEQUENCE_LIMIT = 2**63  # venue trade-id sequences are int64; Kafka/JSON consumers expect that range


class GapDetector:
    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}

    def observe(self, trade: Trade, span: int = 1) -> TradeGap | None:
        try:
            current = int(trade.trade_id)
        except ValueError:
            return None
        if not 0 <= current < SEQUENCE_LIMIT:  # not a venue sequence number: no gap detection
            return None
        key = (trade.exchange, trade.instrument)
        last = self._last.get(key)
        if last is not None and current <= last:
            return None
        self._last[key] = current
        first = current - span + 1
        if last is None or first <= last + 1:
            return None
        return TradeGap(exchange=trade.exchange, instrument=trade.instrument, after_trade_id=str(last),
                        before_trade_id=str(first), missing=first - last - 1, ts=trade.ts,
                        ts_recv=trade.ts_recv)
