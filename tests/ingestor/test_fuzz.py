"""Fuzz: mutated Binance frames are each published or dead-lettered; none lost, nothing escapes.

Hypothesis drives the mutation operators with arbitrary replacement values; a seeded generator
then pushes 100k mutated frames through the pure pipeline (fast), and a few thousand through
the real producer into the embedded broker, where the message counts must match.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common import topics
from services.common.broker import EmbeddedBroker
from services.common.events import Liquidation, Trade
from services.common.frames import RawFrame
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline
from services.ingestor.producer import Publisher
from services.ingestor.service import Ingestor
from services.ingestor.sources import paced
from services.ingestor.venues.binance_usdm import BinanceUsdm
from tests.ingestor.frames import agg_trade, force_order
from tests.ingestor.kafka_helpers import assert_valid, kafka_for, read_all
from tests.ingestor.mutate import mutate, mutate_structure

VENUE = BinanceUsdm(load_instruments("binance-usdm"))

SYMBOLS = ("BTCUSDT", "ETHUSDT", "1000PEPEUSDT", "SOLUSDT", "RENDERUSDT")


def seeds(rng: random.Random, count: int) -> list[str]:
    frames = []
    next_id = dict.fromkeys(SYMBOLS, 1)      # sequential per symbol, as on Binance
    for i in range(count):
        symbol = rng.choice(SYMBOLS)
        if rng.random() < 0.9:
            next_id[symbol] += 1
            frames.append(agg_trade(symbol, agg_id=next_id[symbol], price=f"{rng.uniform(0.01, 1e5):.4f}",
                                    qty=f"{rng.uniform(0.001, 1e4):.3f}", maker=rng.random() < 0.5,
                                    ts=1_737_975_600_000 + i))
        else:
            frames.append(force_order(symbol, side=rng.choice(("SELL", "BUY")), qty=f"{rng.uniform(0.1, 50):.2f}",
                                      ts=1_737_975_600_000 + i))
    return frames


def check_accounting(pipeline: Pipeline, frames: list[RawFrame]) -> dict[str, int]:
    counts = {"ok": 0, "ignored": 0, "deadletter": 0, "trades": 0, "liquidations": 0}
    for frame in frames:
        records = pipeline.process(frame)      # must never raise
        letters = [r for r in records if r[0] == topics.DEADLETTER.name]
        if letters:
            assert len(records) == 1
            assert orjson.loads(letters[0][2])["raw"] == frame.frame
        for topic, _, value in records:
            if topic == topics.TRADES.name:
                Trade.from_dict(orjson.loads(value))
                counts["trades"] += 1
            elif topic == topics.LIQUIDATIONS.name:
                Liquidation.from_dict(orjson.loads(value))
                counts["liquidations"] += 1
    stats = pipeline.stats
    assert stats["ok"] + stats["ignored"] + stats["deadletter"] == len(frames)
    assert stats["trades"] == counts["trades"] and stats["liquidations"] == counts["liquidations"]
    assert stats["ok"] == stats["trades"] + stats["liquidations"] + stats["duplicates"]   # one event per ok frame
    return dict(stats)


nasty_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                         st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                         st.sampled_from(["NaN", "inf", "-1", "0", "1e999", "SELL", "BTCUSDT", "aggTrade"]))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32), value=nasty_values, trade=st.booleans())
def test_hypothesis_field_mutations_are_published_or_dead_lettered(seed: int, value: Any, trade: bool) -> None:
    rng = random.Random(seed)
    base = agg_trade(agg_id=seed + 1) if trade else force_order(ts=seed)
    frame = mutate_structure(base, rng, replacement=value, use_replacement=True)
    check_accounting(Pipeline({VENUE.id: VENUE}), [RawFrame(VENUE.id, frame, 1_737_975_601_000)])


def test_100k_mutated_frames_through_the_pipeline() -> None:
    rng = random.Random(20250127)
    frames = [RawFrame(VENUE.id, mutate(f, rng), 1_737_975_600_000 + i) for i, f in enumerate(seeds(rng, 100_000))]
    stats = check_accounting(Pipeline({VENUE.id: VENUE}), frames)
    assert stats["deadletter"] > 10_000 and stats["ok"] > 10_000     # the mix really exercises both paths


def test_mutated_frames_through_the_real_producer(broker: EmbeddedBroker) -> None:
    rng = random.Random(7)
    frames = [RawFrame(VENUE.id, mutate(f, rng), 1_737_975_600_000 + i) for i, f in enumerate(seeds(rng, 3000))]

    async def run() -> dict[str, int]:
        publisher = Publisher(kafka_for(broker.bootstrap))
        await publisher.start()
        try:
            summary = await Ingestor(Pipeline({VENUE.id: VENUE}), publisher).run(paced(frames, None), asyncio.Event())
        finally:
            assert await publisher.stop()
        assert summary.published == {t: n for t, n in summary.published.items() if n}
        return summary.outcomes

    stats = Counter(asyncio.run(run()))
    published = asyncio.run(read_all(broker.bootstrap))
    assert_valid(published)
    assert stats["ok"] + stats["ignored"] + stats["deadletter"] == len(frames)
    assert len(published[topics.DEADLETTER.name]) == stats["deadletter"]
    assert len(published[topics.TRADES.name]) == stats["trades"]
    assert len(published[topics.LIQUIDATIONS.name]) == stats["liquidations"]
    assert sum(b["count"] for _, b in published[topics.TRADE_BARS.name]) == stats["trades"]
