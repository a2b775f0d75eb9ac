"""The topic registry: every Kafka topic cryptopulse reads or writes is declared here, once.

Nothing else in the code base spells a topic name; it refers to ``TRADES.name`` and friends.
``schema`` names the JSON Schema file (in ``schemas/``) that every value on the topic conforms to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from services.common.clock import DAY_MS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str
    schema: str
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    about: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def schema_path(self) -> Path:
        return SCHEMA_DIR / self.schema

    @property
    def config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        config.update(self.extra_config)
        return config


# --- raw events (ingestor -> processor, downstream users) ---
TRADES = Topic(
    "cryptopulse.trades", 4, "instrument", "trade.schema.json",
    about="Every normalized trade (canonical Trade).",
)
LIQUIDATIONS = Topic(
    "cryptopulse.liquidations", 4, "instrument", "liquidation.schema.json",
    about="Every normalized liquidation (canonical Liquidation).",
)
TRADE_BARS = Topic(
    "cryptopulse.trade-bars", 4, "asset", "trade-bar.schema.json",
    about="Exact per-instrument micro-bars (<= 250 ms) of the trades topic, keyed by base asset so all "
          "venues of an asset share a partition; the processor's hot path.",
)
TRADE_GAPS = Topic(
    "cryptopulse.trade-gaps", 1, "exchange:instrument", "trade-gap.schema.json",
    about="Trade-id gaps detected on venues with sequential trade ids.",
)
DEADLETTER = Topic(
    "cryptopulse.deadletter", 1, "source", "deadletter.schema.json",
    about="Frames and messages that could not be used, with the raw input and the reason.",
)

# --- reference data and history input ---
ASSETS = Topic(
    "cryptopulse.assets", 1, "asset", "asset.schema.json", cleanup_policy="compact",
    retention_ms=-1, about="Asset universe: circulating supply and sector tags (latest per asset).",
)
CANDLE_HISTORY = Topic(
    "cryptopulse.candle-history", 1, "series:interval", "candle.schema.json",
    retention_ms=-1, about="Backfilled daily/hourly candles that seed the indicators.",
)
REFERENCE_STATUS = Topic(
    "cryptopulse.reference-status", 1, "kind", "reference-status.schema.json", cleanup_policy="compact",
    retention_ms=-1,
    about="Where the reference data stands: the assets' source and as-of time (key assets), backfill "
          "progress per venue, instrument and interval (key backfill:...), for clients and resumption.",
)

# --- derived (processor -> gateway, downstream users) ---
ASSET_STATS = Topic(
    "cryptopulse.asset-stats", 4, "asset", "asset-stats.schema.json", cleanup_policy="compact",
    about="Per-asset USD price, 24 h OHLC and change, 24 h volume and its change, market cap.",
)
SECTOR_CAPS = Topic(
    "cryptopulse.sector-caps", 1, "sector", "sector-cap.schema.json", cleanup_policy="compact",
    about="Per-sector (and total) market cap, 24 h change, volume, members, gainers and losers.",
)
LIQUIDATION_TOTALS = Topic(
    "cryptopulse.liquidation-totals", 1, "window:scope", "liquidation-totals.schema.json",
    cleanup_policy="compact",
    about="Rolling 1h/4h/12h/24h liquidation totals (all, per asset, per exchange), long/short.",
)
CANDLES = Topic(
    "cryptopulse.candles", 1, "series:interval", "candle.schema.json", cleanup_policy="compact",
    about="Latest 1m/1h/1d candle per series (total cap, sector caps, asset prices).",
)
INDICATORS = Topic(
    "cryptopulse.indicators", 1, "series:interval", "indicators.schema.json", cleanup_policy="compact",
    about="SMA/EMA/RSI/MACD per candle series and interval.",
)
ALERTS = Topic(
    "cryptopulse.alerts", 1, "kind", "alert.schema.json",
    about="Level crosses, RSI regime shifts, cascades, volume surges, drawdowns.",
)

RAW_TOPICS: tuple[Topic, ...] = (TRADES, LIQUIDATIONS, TRADE_BARS, TRADE_GAPS, DEADLETTER)
REFERENCE_TOPICS: tuple[Topic, ...] = (ASSETS, CANDLE_HISTORY, REFERENCE_STATUS)
DERIVED_TOPICS: tuple[Topic, ...] = (
    ASSET_STATS, SECTOR_CAPS, LIQUIDATION_TOTALS, CANDLES, INDICATORS, ALERTS,
)
ALL_TOPICS: tuple[Topic, ...] = RAW_TOPICS + REFERENCE_TOPICS + DERIVED_TOPICS


def by_name(name: str) -> Topic:
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(f"unknown topic {name!r}; known: {', '.join(t.name for t in ALL_TOPICS)}")
