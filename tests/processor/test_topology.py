"""The processor's topology without Faust: real stages and a real SignalEngine; what each batch
changes, what a flush publishes where and in which order, its slicing, the history gate, the
cascade re-check and the signal state it stores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from services.common import topics
from services.common.events import Liquidation, TradeBar
from services.common.settings import KafkaSettings
from services.processor.context import Context
from services.processor.reference import bundled_universe
from services.processor.settings import ProcessorSettings
from services.processor.signals import SignalEngine
from services.processor.stage_assets import AssetStage
from services.processor.stage_liquidations import LiquidationStage
from services.processor.stage_sectors import SectorStage
from services.processor.timeutil import MINUTE_MS
from services.processor.topology import BOOK_KEY, Output, Slice, Topology, slices_by_size
from tests import oracle
from tests.processor.data import market
from tests.processor.helpers import T0, bar, differences, liquidation

HOUR = 60 * MINUTE_MS
SETTINGS = ProcessorSettings()


class Clock:
    """The sector stage's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def context() -> Context:
    """A worker's context with emission intervals of 0 (everything changed is due at once), a
    hand-moved sector-stage clock and a fixed alert clock; trade bars come from partition 0 only."""
    universe = bundled_universe()
    sectors = SectorStage(universe, 0.0, clock=Clock())
    sectors.configure(SETTINGS.processor_close_lateness_ms, SETTINGS.processor_idle_source_seconds, [0])
    return Context(settings=SETTINGS, kafka=KafkaSettings(), universe=universe, assets=AssetStage(universe, 0.0),
                   liquidations=LiquidationStage(0.0), sectors=sectors, signals=SignalEngine(SETTINGS, clock=lambda: 0))


def ready(topology: Topology) -> Topology:
    topology.ctx.reference_ready.set()
    topology.ctx.history_ready.set()
    return topology


def feed(topology: Topology, bars: Sequence[TradeBar], liqs: Sequence[Liquidation] = (), batch: int = 50) -> None:
    """Route batches as the agents do: bars -> minute records -> sector stage; liquidations checked
    -> single-partition totals."""
    for i in range(0, len(bars), batch):
        out = topology.bars([(orjson.dumps(b), 0, b.base.encode()) for b in bars[i:i + batch]])
        topology.minutes(value for _topic, _key, value in out.records)
    checked = topology.check_liquidations(orjson.dumps(q) for q in liqs)
    topology.liquidation_totals(value for _topic, _key, value in checked.records)
    # then the source goes quiet: the watermark no longer holds the last minutes of the cap series
    clock = topology.ctx.sectors.clock
    assert isinstance(clock, Clock)
    clock.now += SETTINGS.processor_idle_source_seconds + 1
    topology.minutes([])


def outputs(slices: Iterable[Slice]) -> list[Output]:
    return [out for part in slices for out in part.outputs]


def drain(topology: Topology, flushes: int = 40) -> list[list[Slice]]:
    """The slices of ``flushes`` flushes in a row. A part of a flush ends at a slice that comes out
    short (some due values may be unchanged or empty); what is left is due at the next flush, as on
    the worker's 0.1 s timer."""
    return [list(topology.flush(now=float(now))) for now in range(flushes)]


def names(outs: Iterable[Output]) -> set[str]:
    return {out.topic.name for out in outs}


def latest(outs: Iterable[Output], topic: topics.Topic) -> dict[str, dict[str, Any]]:
    return {out.key: out.value for out in outs if out.topic is topic}


def falling_btc(hours: int = 26) -> list[TradeBar]:
    """One BTC bar every 30 minutes, the price falling 20 % over ``hours`` hours (BTC's cap
    outweighs the stablecoins', the only other members of ``total`` with a cap without bars)."""
    steps = hours * 2
    return [bar("BTC", T0 + i * 30 * MINUTE_MS, T0 + i * 30 * MINUTE_MS + 1, (p, p, p, p), 2e6, seq=i)
            for i in range(steps + 1) for p in [100_000.0 - 20_000.0 * i / steps]]


def test_a_bar_batch_gives_table_changes_one_packed_message_and_dead_letters() -> None:
    topology = Topology(context())
    good = [bar("BTC", T0, T0 + 5, (1, 2, 0.5, 1.5), 1e4, count=3),
            bar("ETH", T0 + 10, T0 + 20, (2, 2, 2, 2), 1e3, count=2, seq=10)]
    messages = [(orjson.dumps(b), 0, b.base.encode()) for b in good]
    batch = topology.bars([*messages, (b"{junk", 0, b"BTC"), messages[0]])
    assert sorted(key for _p, key, _v in batch.table) == [f"BTC|{T0}", f"ETH|{T0}"]
    assert all(partition == 0 and value for partition, _k, value in batch.table)
    [(topic, key, packed)] = batch.records
    assert (topic, key) == (f"{SETTINGS.processor_app_id}-asset-minutes", b"slice")
    records = orjson.loads(packed)
    assert [r.get("asset") for r in records] == ["BTC", "ETH", None]   # the buckets, then the progress
    assert records[-1]["src"] == 0 and records[-1]["wm"] == T0 + 20
    assert [reason for _raw, reason in batch.deadletters] and batch.deadletters[0][0] == b"{junk"
    assert dict(batch.outcomes) == {"applied": 2, "deadletter": 1, "duplicate": 1}
    assert batch.trades == 5
    assert topology.bars([(b"[]", 1, None)]).records == []   # nothing applied: no message


def test_liquidations_are_checked_then_totalled_once() -> None:
    topology = Topology(context())
    liqs = [liquidation("BTC", T0, "long", 5e5, 100.0, seq=1), liquidation("ETH", T0 + 1, "short", 1e4, 10.0, seq=2)]
    checked = topology.check_liquidations([*(orjson.dumps(q) for q in liqs), b"nope", None])
    assert [(topic, key) for topic, key, _v in checked.records] == [(topology.liquidations_topic, b"all")] * 2
    assert len(checked.deadletters) == 2 and dict(checked.outcomes) == {"deadletter": 2}
    values = [value for _t, _k, value in checked.records]
    totals = topology.liquidation_totals(values)
    assert dict(totals.outcomes) == {"applied": 2} and len(totals.table) == 2
    assert dict(topology.liquidation_totals(values).outcomes) == {"duplicate": 2}
    assert topology.check_liquidations([]).outcomes == {}


def test_a_flush_publishes_the_oracle_values_in_topology_order() -> None:
    bars, liqs = market(seed=5, bars_per_asset=60, minutes=1_600, liquidations=40)
    topology = ready(Topology(context()))
    feed(topology, bars, liqs)
    flushes = drain(topology)
    outs = outputs(flushes[0])
    expected = oracle.compute(bars, liqs, bundled_universe())
    totals = {k: v for k, v in latest(outs, topics.LIQUIDATION_TOTALS).items()
              if v["count"] or k in expected["liquidation-totals"]}
    assert differences(latest(outs, topics.ASSET_STATS), expected["asset-stats"]) == []
    assert differences(totals, expected["liquidation-totals"]) == []
    assert differences(latest(outs, topics.SECTOR_CAPS), expected["sector-caps"]) == []
    later = [out for parts in flushes[1:] for out in outputs(parts)]
    assert names(later) <= {topics.CANDLES.name, topics.INDICATORS.name, topics.ALERTS.name}
    assert differences(latest(outs + later, topics.CANDLES), expected["candles"]) == []
    # families in order, alerts right after the value that raised them
    order = [out.topic.name for out in outs if out.topic is not topics.ALERTS]
    blocks = [t for i, t in enumerate(order) if i == 0 or order[i - 1] != t]
    assert blocks[:3] == [topics.ASSET_STATS.name, topics.LIQUIDATION_TOTALS.name, topics.SECTOR_CAPS.name]
    assert set(blocks[3:]) == {topics.CANDLES.name, topics.INDICATORS.name}
    stats = [out for out in outs if out.topic is topics.ASSET_STATS]
    assert all(out.ts_recv == max(b.ts_recv for b in bars if b.base == out.key) for out in stats)
    assert all(out.ts_recv == 0 and out.key == out.value["kind"] for out in outs if out.topic is topics.ALERTS)
    # every candle is followed by its indicators; each series' closed candles come in order, before its forming one
    pairs = [out for out in outs if out.topic in (topics.CANDLES, topics.INDICATORS)]
    assert all(c.topic is topics.CANDLES and i.topic is topics.INDICATORS and c.key == i.key
               for c, i in zip(pairs[::2], pairs[1::2], strict=True))
    candles = [out.value for out in pairs[::2]]
    for key in {f"{c['series']}:{c['interval']}" for c in candles}:
        series = [c for c in candles if f"{c['series']}:{c['interval']}" == key]
        assert [c["open_time"] for c in series] == sorted(c["open_time"] for c in series)
        flags = [c["closed"] for c in series]
        assert flags == sorted(flags, reverse=True) and flags.count(False) <= 1


def test_slices_bound_the_work_and_concatenate_to_one_flush() -> None:
    bars, liqs = market(seed=6, bars_per_asset=40, minutes=1_500, liquidations=20)
    whole, sliced = ready(Topology(context())), ready(Topology(context(), flush_slice=3, sector_slice=2))
    for topology in (whole, sliced):
        feed(topology, bars, liqs)
    parts = [part for parts in drain(sliced) for part in parts]
    assert [(o.topic, o.key, o.value) for o in outputs(parts)] == \
        [(o.topic, o.key, o.value) for parts in drain(whole) for o in outputs(parts)]
    counted = {topics.ASSET_STATS.name: 3, topics.SECTOR_CAPS.name: 2, topics.CANDLES.name: 3}
    for part in parts:
        for topic, limit in counted.items():
            assert sum(out.topic.name == topic for out in part.outputs) <= limit
    # a full slice asks for a yield; the last slice of each part does not
    paused = [part.pause for part in parts]
    assert paused[-1] is False and paused.count(True) >= 8
    for part in parts:
        if part.pause:
            n = {topic: sum(out.topic.name == topic for out in part.outputs) for topic in counted}
            assert any(n[topic] == limit for topic, limit in counted.items())


def test_before_the_history_is_read_only_assets_and_liquidations_are_published() -> None:
    topology = Topology(context())
    topology.ctx.reference_ready.set()
    feed(topology, falling_btc(3), [liquidation("BTC", T0 + HOUR, "long", 5e5, 99_000.0)])
    first = names(outputs(topology.flush(now=0.0)))
    assert first == {topics.ASSET_STATS.name, topics.LIQUIDATION_TOTALS.name}
    topology.ctx.history_ready.set()
    second = names(outputs(topology.flush(now=1.0)))
    assert second >= {topics.SECTOR_CAPS.name, topics.CANDLES.name, topics.INDICATORS.name}
    assert not second & first


def test_market_wide_cascades_are_judged_again_when_the_total_cap_moves() -> None:
    """Longs liquidated while BTC falls 20 %: the asset scope is judged at once (asset-stats go out
    first), the market-wide scopes only once the total cap's 24 h change is published."""
    topology = Topology(context())
    topology.ctx.reference_ready.set()
    bars = falling_btc()
    feed(topology, bars, [liquidation("BTC", bars[-1].ts_last - 60_000, "long", 5e6, 80_000.0, seq=1)])
    assert topology.price_change("all") is None
    first = outputs(topology.flush(now=0.0))
    btc_change = latest(first, topics.ASSET_STATS)["BTC"]["change_24h_pct"]
    assert btc_change < -15 and topology.price_change("asset:BTC") == btc_change
    cascades = [out.value for out in first if out.topic is topics.ALERTS and out.key == "liquidation_cascade"]
    assert {a["subject"] for a in cascades} == {"asset:BTC"}
    assert topology.recheck_cascades() == []               # no total cap move yet
    topology.ctx.history_ready.set()
    second = outputs(topology.flush(now=1.0))
    total = next(i for i, out in enumerate(second) if out.topic is topics.SECTOR_CAPS and out.key == "total")
    assert topology.price_change("all") == second[total].value["change_24h_pct"] < -15
    after_total = [out.value["subject"] for out in second[total + 1:]
                   if out.topic is topics.ALERTS and out.key == "liquidation_cascade"]
    assert {"all", "exchange:okx"} <= set(after_total) and "asset:BTC" not in after_total
    assert [out for out in second[:total] if out.key == "liquidation_cascade"] == []
    assert topology.recheck_cascades() == []               # edge flags: no repeat
    drawdowns = [out.value["subject"] for out in second if out.key == "sector_drawdown"]
    assert "total" in drawdowns


def test_signal_state_is_stored_after_closes_and_restored_by_a_new_worker() -> None:
    topology = ready(Topology(context()))
    feed(topology, falling_btc(), [liquidation("BTC", T0 + HOUR, "long", 5e6, 98_000.0)])
    run = topology.flush(now=0.0)
    list(run)
    assert "BTC:1h" in run.closed and "total:1h" in run.closed
    changes = topology.signal_changes(run.closed, book=True)
    assert [key for _p, key, _v in changes] == [*sorted(run.closed), BOOK_KEY]
    assert all(partition == 0 for partition, _k, _v in changes)
    assert topology.signal_changes(set(), book=True) == []                   # the book did not change
    assert topology.signal_changes(run.closed, book=False)[-1][1] != BOOK_KEY  # not the table's owner

    restarted = Topology(context())
    stored = [(key, value) for _p, key, value in changes if value is not None]
    assert restarted.restore_signals(stored) == len(run.closed)
    for key in run.closed:
        assert restarted.ctx.signals.series_state(key) == topology.ctx.signals.series_state(key)
    assert restarted.ctx.signals.book_state() == topology.ctx.signals.book_state()
    assert restarted.signal_changes(set(), book=True) == []                  # restored = already written

    # a series this worker took further keeps its own state; an unreadable one starts afresh
    older = [(key, value) for key, value in stored if key == "BTC:1h"]
    state = orjson.loads(older[0][1])
    state["last_open_time"] -= HOUR
    assert topology.restore_signals([("BTC:1h", orjson.dumps(state)), ("total:1d", b"{}")]) == 0
    assert topology.ctx.signals.series_state("BTC:1h") == orjson.loads(older[0][1])


def test_slices_by_size_keeps_order_and_at_least_one_message() -> None:
    values = [b"a" * 10, b"b" * 10, b"c" * 30, b"d"]
    assert list(slices_by_size(values, 20)) == [[b"a" * 10, b"b" * 10], [b"c" * 30], [b"d"]]
    assert list(slices_by_size([], 20)) == []


class FailingEngine(SignalEngine):
    """The real engine, except that the indicators of one series cannot be computed (fault injection:
    no real input makes the engine raise any more)."""

    def on_candle(self, candle: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if candle["series"] == "BTC":
            raise ArithmeticError("injected")
        return super().on_candle(candle)


def test_a_candle_whose_indicators_fail_is_published_and_dead_lettered_and_the_flush_goes_on() -> None:
    ctx = context()
    ctx.signals = FailingEngine(SETTINGS, clock=lambda: 0)
    topology = ready(Topology(ctx))
    feed(topology, falling_btc())
    flushes = drain(topology)
    outs = [out for flush in flushes for out in outputs(flush)]
    letters = [letter for flush in flushes for part in flush for letter in part.deadletters]
    btc = [out.value for out in outs if out.topic is topics.CANDLES and out.key.startswith("BTC:")]
    assert any(c["closed"] for c in btc)
    assert not [out for out in outs if out.topic is topics.INDICATORS and out.key.startswith("BTC:")]
    assert len(letters) == len(btc)
    assert all("indicators of BTC:" in reason and "injected" in reason for _raw, reason in letters)
    assert {orjson.loads(raw)["series"] for raw, _reason in letters} == {"BTC"}
    assert any(out.topic is topics.INDICATORS and out.key == "total:1h" for out in outs)
