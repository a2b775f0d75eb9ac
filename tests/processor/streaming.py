"""Drive the pure stages as the Faust agents do, without Kafka (for unit and property tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from services.common.events import Liquidation, TradeBar
from services.processor.reference import Universe
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage


class Table:
    """What a changelog-backed table holds after a sequence of absolute changes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def apply(self, changes: Sequence[tuple[int, str, bytes | None]]) -> None:
        for _partition, key, value in changes:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


class Pipeline:
    """The asset and liquidation stages with their tables; ``restart`` rebuilds from the tables."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.asset_table = Table()
        self.liq_table = Table()
        self.restart()

    def restart(self) -> None:
        self.assets = AssetStage(self.universe, 0.0)
        self.assets.rebuild(self.asset_table.data.items())
        self.liquidations = LiquidationStage(0.0)
        self.liquidations.rebuild(self.liq_table.data.values())

    def bars(self, bars: Sequence[TradeBar | bytes]) -> None:
        batch = self.assets.apply((b if isinstance(b, bytes) else orjson.dumps(b), 0) for b in bars)
        self.asset_table.apply(batch.table)

    def liqs(self, liqs: Sequence[Liquidation]) -> None:
        changes, _ = self.liquidations.apply(liqs)
        self.liq_table.apply(changes)

    def asset_stats(self) -> dict[str, dict[str, Any]]:
        return {a: v for a in self.assets.books if (v := self.assets.value(a)) is not None}

    def liquidation_totals(self) -> dict[str, dict[str, Any]]:
        return self.liquidations.book.totals()
