"""Drive the pure stages as the Faust agents do, without Kafka (for unit and property tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from services.common.events import Liquidation, TradeBar
from services.processor.candles import INTERVAL_MS, open_time_of
from services.processor.reference import Universe
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage


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
        self.sector_table = Table()
        self.restart()

    def restart(self) -> None:
        self.assets = AssetStage(self.universe, 0.0)
        self.assets.rebuild(self.asset_table.data.items())
        self.liquidations = LiquidationStage(0.0)
        self.liquidations.rebuild(self.liq_table.data.values())
        self.sectors = SectorStage(self.universe, 0.0)
        self.sectors.rebuild(self.sector_table.data.items())

    def bars(self, bars: Sequence[TradeBar | bytes]) -> None:
        batch = self.assets.apply((b if isinstance(b, bytes) else orjson.dumps(b), 0) for b in bars)
        self.asset_table.apply(batch.table)
        self.sector_table.apply(self.sectors.apply(record for _asset, record in batch.records))

    def liqs(self, liqs: Sequence[Liquidation]) -> None:
        changes, _ = self.liquidations.apply(liqs)
        self.liq_table.apply(changes)

    def asset_stats(self) -> dict[str, dict[str, Any]]:
        return {a: v for a in self.assets.books if (v := self.assets.value(a)) is not None}

    def sector_caps(self) -> dict[str, dict[str, Any]]:
        return self.sectors.sector_values(self.universe.sectors())

    def candles(self) -> dict[str, dict[str, Any]]:
        out = {}
        for series in [*self.sectors.mirrors, *self.universe.sectors()]:
            for interval in INTERVAL_MS:
                now = self.sectors.series_now(series)
                candle = self.sectors.candle(series, interval, open_time_of(now, interval), closed=False)
                if candle is not None:
                    out[f"{series}:{interval}"] = candle
        return out

    def liquidation_totals(self) -> dict[str, dict[str, Any]]:
        return self.liquidations.book.totals()
