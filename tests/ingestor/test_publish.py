"""Pipeline + producer against the real embedded broker: every frame is published or dead-lettered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.common import topics
from services.common.broker import EmbeddedBroker
from services.common.frames import RawFrame
from services.common.settings import load
from services.ingestor.instruments import load_instruments
from services.ingestor.service import Ingestor, build_pipeline, build_publisher
from services.ingestor.settings import IngestorSettings
from services.ingestor.sources import paced, read_recording
from services.ingestor.venues.binance_usdm import BinanceUsdm
from tests.ingestor.frames import agg_trade, force_order
from tests.ingestor.kafka_helpers import assert_valid, kafka_for, read_all

VENUE = BinanceUsdm(load_instruments("binance-usdm"))

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "ingestor" / "data" / "sample-binance-usdm.jsonl"
BAD = ["{not json", agg_trade(symbol="NOPEUSDT"), agg_trade(price="NaN"), agg_trade(qty="-3"),
       '{"stream":"x","data":{"e":"markPriceUpdate"}}', "y" * 5000, force_order(side="?")]


def test_every_frame_published_or_dead_lettered_and_schema_valid(broker: EmbeddedBroker) -> None:
    frames = [f for f in read_recording(SAMPLE) if isinstance(f, RawFrame)]
    ts = frames[-1].ts_recv
    extra = [RawFrame(VENUE.id, text, ts + i) for i, text in enumerate(BAD)]
    extra += [RawFrame(VENUE.id, frames[0].frame, ts + 100), RawFrame(VENUE.id, '{"result":null,"id":7}', ts + 101)]
    settings = load(IngestorSettings, max_frame_bytes=4096, keep_raw_frame=False)

    async def run() -> tuple[dict[str, int], dict[str, int]]:
        publisher = build_publisher(settings, kafka_for(broker.bootstrap))
        await publisher.start()
        ingestor = Ingestor(build_pipeline(settings, {VENUE.id: VENUE}), publisher)
        try:
            summary = await ingestor.run(paced(frames + extra, None), asyncio.Event())
        finally:
            assert await publisher.stop()
        return summary.outcomes, summary.published

    stats, acked = asyncio.run(run())
    published = asyncio.run(read_all(broker.bootstrap))
    assert_valid(published)
    total = len(frames) + len(extra)
    assert stats["ok"] + stats["ignored"] + stats["deadletter"] == total
    assert stats["deadletter"] == len(BAD) and stats["ignored"] == 1 and stats["duplicates"] == 1
    counts = {name: len(messages) for name, messages in published.items()}
    assert counts[topics.TRADES.name] == stats["trades"] == sum(1 for f in frames if "aggTrade" in f.frame)
    assert counts[topics.LIQUIDATIONS.name] == stats["liquidations"] == sum(1 for f in frames if "forceOrder" in f.frame)
    assert counts[topics.DEADLETTER.name] == len(BAD)
    assert counts[topics.TRADE_BARS.name] == stats["bars"]
    assert acked == {name: n for name, n in counts.items() if n}
    bars = [v for _, v in published[topics.TRADE_BARS.name]]
    assert sum(b["count"] for b in bars) == stats["trades"]
    trade_ids = [(v["instrument"], v["trade_id"]) for _, v in published[topics.TRADES.name]]
    assert len(set(trade_ids)) == len(trade_ids)
    for key, value in published[topics.TRADES.name]:
        assert key == value["instrument"].encode()
    for key, value in published[topics.TRADE_BARS.name]:
        assert key == value["base"].encode()
    reasons = sorted(v["reason"].split(":")[0] for _, v in published[topics.DEADLETTER.name])
    assert reasons == sorted(["invalid_json", "unknown_instrument", "bad_value", "bad_value", "unknown_event",
                              "oversized", "bad_field"])
