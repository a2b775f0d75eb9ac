"""Liquidation stages (pure): validate on the partitioned input, total on one partition.

The first stage checks each liquidation and forwards the good ones to a single-partition internal
topic (totals over ``all`` need every liquidation in one place; liquidations are rare enough for
Faust's per-event path). The second keeps the 24 h :class:`LiqBook` and emits conflated totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from services.common.events import Liquidation
from services.processor.emitter import Conflator
from services.processor.liqbook import APPLIED, DUPLICATE, LiqBook, liquidation_id

TableChange = tuple[int, str, bytes | None]


class LiquidationStage:
    def __init__(self, emit_interval: float) -> None:
        self.book = LiqBook()
        self.emit = Conflator(emit_interval)
        self.known: set[str] = set()
        self.max_ts_recv = 0

    def apply(self, liqs: Iterable[Liquidation]) -> tuple[list[TableChange], dict[str, int]]:
        """Apply liquidations; returns table changes (one key per liquidation) and outcome counts."""
        changes: list[TableChange] = []
        outcomes: dict[str, int] = {}
        for liq in liqs:
            outcome, evicted = self.book.apply(liq)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == APPLIED:
                changes.append((0, liquidation_id(liq), orjson.dumps(liq)))
            if outcome in (APPLIED, DUPLICATE):
                self.emit.mark("all")
                self.max_ts_recv = max(self.max_ts_recv, liq.ts_recv)
            changes.extend((0, key, None) for key in evicted)
        return changes, outcomes

    def rebuild(self, values: Iterable[bytes]) -> None:
        self.book = LiqBook()
        liqs = sorted((Liquidation.from_dict(orjson.loads(v)) for v in values), key=lambda q: q.ts)
        for liq in liqs:
            self.book.apply(liq)
        self.emit.mark("all")

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """``window:scope`` totals to emit now (every key that changed; vanished scopes go to zero)."""
        if not self.emit.ready(now):
            return []
        self.emit.emitted("all", now)
        totals = self.book.totals()
        for key in self.known - set(totals):
            window, scope = key.split(":", 1)
            totals[key] = {"window": window, "scope": scope, "long_usd": 0.0, "short_usd": 0.0,
                           "total_usd": 0.0, "long_count": 0, "short_count": 0, "count": 0,
                           "largest": None, "ts": max(self.book.now_ts, 0)}
        self.known = {k for k, v in totals.items() if v["count"]}
        return [(key, value) for key, value in sorted(totals.items())
                if self.emit.changed(key, value, now)]
