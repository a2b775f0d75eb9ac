"""Cap-series candles close on the event-time watermark of the trade-bars partitions: minute
records of two partitions interleaved out of order across a day boundary still give the oracle's
daily and hourly closes; a quiet partition stops holding the watermark back; a rebuilt stage keeps it."""

from __future__ import annotations

import math
from typing import Any

import orjson

from services.common.events import TradeBar
from services.processor.reference import bundled_universe
from services.processor.stage_assets import AssetStage
from services.processor.stage_sectors import RELEASE_SLICE, SectorStage
from services.processor.timeutil import MINUTE_MS
from services.processor.watermark import Watermark
from tests import oracle
from tests.processor.helpers import T0, bar, differences

HOUR = 60 * MINUTE_MS
DAY = 24 * HOUR
MIDNIGHT = T0 + DAY                       # 2025-01-28 00:00, the boundary the records straddle
LATENESS = 5_000


def bars_of(asset: str, start: int, end: int, step: int, base: float) -> list[TradeBar]:
    return [bar(asset, ts, ts + 1, (p, p, p, p), 1_000.0, seq=i)
            for i, ts in enumerate(range(start, end, step)) for p in [base * (1 + ((i * 7) % 11) / 100)]]


def stage_pair() -> tuple[AssetStage, SectorStage]:
    universe = bundled_universe()
    sectors = SectorStage(universe, 0.0, lateness_ms=LATENESS, idle_s=10.0)
    sectors.configure(LATENESS, 10.0, [0, 1])
    return AssetStage(universe, 0.0), sectors


def feed(assets: AssetStage, sectors: SectorStage, bars: list[TradeBar], partition: int,
         now: float = 0.0) -> list[tuple[int, str, bytes | None]]:
    batch = assets.apply((orjson.dumps(b), partition) for b in bars)
    return sectors.apply((record for _key, record in batch.records), now=now)


def closed(sectors: SectorStage, series: str, interval: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for c in sectors.due_candles(now=0.0):
        if c["closed"] and c["series"] == series and c["interval"] == interval:
            assert c["open_time"] not in out, "a close was published twice"
            out[c["open_time"]] = c["close"]
    return out


def oracle_close(bars: list[TradeBar], series: str, interval: str, end: int) -> float:
    universe = bundled_universe()
    return float(oracle.candles([b for b in bars if b.ts_last < end], universe.assets)[f"{series}:{interval}"]["close"])


def test_interleaved_partitions_across_midnight_close_the_day_as_the_oracle() -> None:
    assets, sectors = stage_pair()
    btc = bars_of("BTC", MIDNIGHT - 4 * HOUR, MIDNIGHT + 2 * HOUR, 10 * MINUTE_MS, 100_000.0)   # partition 0
    eth = bars_of("ETH", MIDNIGHT - 4 * HOUR + 5 * MINUTE_MS, MIDNIGHT + 2 * HOUR, 10 * MINUTE_MS, 3_000.0)
    everything = btc + eth
    # partition 0 runs far ahead into the next day before partition 1's late evening arrives
    btc_ahead, btc_rest = [b for b in btc if b.ts_last < MIDNIGHT + HOUR], [b for b in btc if b.ts_last >= MIDNIGHT + HOUR]
    eth_evening, eth_rest = [b for b in eth if b.ts_last < MIDNIGHT - HOUR], [b for b in eth if b.ts_last >= MIDNIGHT - HOUR]
    # what a close at the processor-wide time would have seen: ETH only up to 3 h before midnight
    early = oracle_close(btc_ahead + eth_evening[:1], "total", "1d", MIDNIGHT)
    true_close = oracle_close(everything, "total", "1d", MIDNIGHT)
    assert not math.isclose(early, true_close, rel_tol=1e-6)

    feed(assets, sectors, btc_ahead, 0)
    feed(assets, sectors, eth_evening[:1], 1)
    assert closed(sectors, "total", "1d") == {}           # ETH's partition holds the watermark back
    feed(assets, sectors, eth_evening[1:], 1)
    feed(assets, sectors, list(reversed(eth_rest)), 1)    # out of order inside the partition too
    feed(assets, sectors, btc_rest, 0)

    daily = closed(sectors, "total", "1d")
    assert list(daily) == [T0]
    assert math.isclose(daily[T0], true_close, rel_tol=1e-9)


def test_hourly_cap_closes_match_the_oracle_under_interleaving() -> None:
    assets, sectors = stage_pair()
    btc = bars_of("BTC", MIDNIGHT - 3 * HOUR, MIDNIGHT + HOUR, 7 * MINUTE_MS, 100_000.0)
    eth = bars_of("ETH", MIDNIGHT - 3 * HOUR, MIDNIGHT + HOUR, 11 * MINUTE_MS, 3_000.0)
    chunks = [(btc[i:i + 9], 0) for i in range(0, len(btc), 9)]
    chunks += [(eth[i:i + 4], 1) for i in range(0, len(eth), 4)]
    chunks.sort(key=lambda c: (c[1], c[0][0].ts_last))        # all of partition 0 first, then 1
    hourly: dict[int, float] = {}
    for chunk, partition in chunks:
        feed(assets, sectors, chunk, partition)
        hourly.update(closed(sectors, "total", "1h"))
    assert sorted(hourly) == [MIDNIGHT - 3 * HOUR + h * HOUR for h in range(3)]
    everything = btc + eth
    for open_time, close in hourly.items():
        assert math.isclose(close, oracle_close(everything, "total", "1h", open_time + HOUR), rel_tol=1e-9)


def one_bar(asset: str, ts: int, price: float, seq: int) -> list[TradeBar]:
    return [bar(asset, ts, ts, (price, price, price, price), 1_000.0, seq=seq)]


def test_a_quiet_partition_stops_holding_the_watermark_after_the_idle_time() -> None:
    assets, sectors = stage_pair()
    feed(assets, sectors, one_bar("BTC", MIDNIGHT - 1_000, 100_000.0, 0), 0, now=0.0)
    feed(assets, sectors, one_bar("ETH", MIDNIGHT - 2_000, 3_000.0, 0), 1, now=0.0)
    feed(assets, sectors, one_bar("BTC", MIDNIGHT + 6_000, 100_500.0, 1), 0, now=9.0)
    assert closed(sectors, "total", "1d") == {}           # partition 1 quiet for 9 s: still waited for
    feed(assets, sectors, one_bar("BTC", MIDNIGHT + 7_000, 100_600.0, 2), 0, now=10.5)
    assert list(closed(sectors, "total", "1d")) == [T0]   # quiet for 10.5 s > 10 s (live pace): no longer


def test_a_partition_left_behind_by_a_replay_is_not_idle() -> None:
    assets, sectors = stage_pair()
    feed(assets, sectors, one_bar("BTC", MIDNIGHT - 1_000, 100_000.0, 0), 0, now=0.0)
    feed(assets, sectors, one_bar("ETH", MIDNIGHT - 2_000, 3_000.0, 0), 1, now=0.0)
    feed(assets, sectors, one_bar("BTC", MIDNIGHT + HOUR, 100_500.0, 1), 0, now=30.0)
    assert closed(sectors, "total", "1d") == {}           # event time raced ahead: partition 1 is behind


def test_a_rebuilt_stage_keeps_the_watermark_and_closes_nothing_early() -> None:
    assets, sectors = stage_pair()
    table: dict[str, bytes] = {}
    for part, partition in ((bars_of("ETH", MIDNIGHT - HOUR, MIDNIGHT - 30 * MINUTE_MS, MINUTE_MS, 3_000.0), 1),
                            (bars_of("BTC", MIDNIGHT - HOUR, MIDNIGHT + HOUR, MINUTE_MS, 100_000.0), 0)):
        for _p, key, value in feed(assets, sectors, part, partition):
            assert value is not None
            table[key] = value
    assert closed(sectors, "total", "1d") == {}
    restarted = SectorStage(bundled_universe(), 0.0)
    restarted.configure(LATENESS, 10.0, [0, 1])
    restarted.rebuild(table.items())
    assert restarted.watermark.progress == sectors.watermark.progress
    assert restarted.watermark.value() == MIDNIGHT - 30 * MINUTE_MS - MINUTE_MS + 1
    assets.progress.clear()                                # stage 1 restarted too
    feed(assets, restarted, bars_of("BTC", MIDNIGHT + HOUR, MIDNIGHT + 2 * HOUR, MINUTE_MS, 100_000.0), 0)
    assert closed(restarted, "total", "1d") == {}
    feed(assets, restarted, bars_of("ETH", MIDNIGHT, MIDNIGHT + HOUR, MINUTE_MS, 3_000.0), 1)
    assert list(closed(restarted, "total", "1d")) == [T0]


def test_watermark_is_the_smallest_progress_of_the_active_sources() -> None:
    wm = Watermark(lateness_ms=100, idle_s=10.0)
    wm.expect([0, 1])
    wm.observe(0, 5_000, now=0.0)
    assert wm.value() is None                             # source 1 has reported nothing yet
    wm.observe(1, 3_000, now=1.0)
    assert (wm.value(), wm.close_time()) == (3_000, 2_900)
    wm.observe(1, 2_000, now=2.0)                         # progress never goes back
    assert wm.value() == 3_000
    wm.observe(0, 9_000, now=12.5)
    assert wm.value() == 9_000                            # source 1 idle for 10.5 s
    wm.observe(1, 4_000, now=13.0)
    assert wm.value() == 4_000                            # and holds it back again once it sends


def test_a_partition_two_days_ahead_still_closes_every_day_as_the_oracle() -> None:
    assets, sectors = stage_pair()
    start = MIDNIGHT - 2 * DAY
    btc = bars_of("BTC", start, MIDNIGHT + 2 * DAY, 20 * MINUTE_MS, 100_000.0)   # beyond its 48 h ring
    eth = bars_of("ETH", start, MIDNIGHT + HOUR, 20 * MINUTE_MS, 3_000.0)
    for i in range(0, len(btc), 30):                     # all of partition 0 first
        feed(assets, sectors, btc[i:i + 30], 0)
    for i in range(0, len(eth), 30):
        feed(assets, sectors, eth[i:i + 30], 1)
    daily = closed(sectors, "total", "1d")
    assert list(daily) == [start, start + DAY]
    everything = btc + eth
    for open_time, close in daily.items():
        assert math.isclose(close, oracle_close(everything, "total", "1d", open_time + DAY), rel_tol=1e-9)


def test_a_partition_behind_its_end_is_never_idle() -> None:
    wm = Watermark(lateness_ms=0, idle_s=10.0)
    wm.observe(0, 9_000, now=0.0, caught_up=True)
    wm.observe(1, 2_000, now=0.0, caught_up=False)      # starved by the other's fetches, not quiet
    wm.observe(0, 90_000, now=30.0, caught_up=True)
    assert wm.value() == 2_000
    wm.observe(1, 3_000, now=31.0, caught_up=True)
    wm.observe(0, 95_000, now=45.0, caught_up=True)
    assert wm.value() == 95_000                          # read to its end and quiet since: idle


def test_a_source_that_never_reports_is_idle_only_at_live_pace() -> None:
    live, replay = Watermark(idle_s=10.0), Watermark(idle_s=10.0)
    for wm in (live, replay):
        wm.expect([0, 1])
        wm.observe(0, 1_000_000, now=0.0)
        assert wm.value() is None
    live.observe(0, 1_011_000, now=11.0)
    replay.observe(0, 9_000_000, now=11.0)
    assert (live.value(), replay.value()) == (1_011_000, None)


def emitted(sectors: SectorStage, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The total cap's sector values and forming candles emitted at wall time ``now``."""
    values = [v for v in sectors.due_sectors(now) if v["sector"] == "total"]
    forming = [c for c in sectors.due_candles(now) if c["series"] == "total" and not c["closed"]]
    return values, forming


def test_every_intermediate_total_equals_the_oracle_at_its_event_time_while_a_partition_runs_ahead() -> None:
    """Partition 0 runs a day ahead of partition 1 (a max-speed replay's uneven fetches): every total
    cap value and forming candle the stage emits is what the oracle computes from the bars up to that
    value's ``ts``, not a sum over BTC's future and ETH's past."""
    assets, sectors = stage_pair()
    btc = bars_of("BTC", T0, T0 + 2 * DAY, 30 * MINUTE_MS, 100_000.0)
    eth = bars_of("ETH", T0 + 5 * MINUTE_MS, T0 + 2 * DAY, 30 * MINUTE_MS, 3_000.0)
    universe = bundled_universe()
    chunks = [(btc[:48], 0), (btc[48:], 0), (eth[:20], 1), (eth[20:60], 1), (eth[60:], 1)]
    seen: list[tuple[str, dict[str, Any]]] = []
    for wall, (chunk, partition) in enumerate(chunks):
        feed(assets, sectors, chunk, partition, now=float(wall))
        values, forming = emitted(sectors, float(wall))
        seen += [("sector", v) for v in values] + [("candle", c) for c in forming]
        if wall == 2:
            assert len(sectors.held) > 48, "BTC's bars beyond ETH's progress wait for partition 1"
    values, forming = emitted(sectors, 30.0)        # both partitions quiet: everything applied
    seen += [("sector", v) for v in values] + [("candle", c) for c in forming]
    assert not sectors.held and sectors.forced == 0
    assert len({v["ts"] for _kind, v in seen}) >= 3, seen
    for kind, value in seen:
        expected = oracle.compute(btc + eth, [], universe, now_ms=value["ts"])
        want = expected["sector-caps"]["total"] if kind == "sector" else \
            expected["candles"][f"total:{value['interval']}"]
        assert not differences({"total": value}, {"total": want}), (kind, value["ts"], value, want)
    assert seen[-1][1]["ts"] == max(b.ts_last for b in btc + eth)


def test_the_sector_table_holds_one_ring_per_asset_and_a_rebuild_from_it_gives_the_same_figures() -> None:
    assets, sectors = stage_pair()
    table: dict[str, bytes] = {}
    btc = bars_of("BTC", T0, T0 + 3 * DAY, MINUTE_MS, 100_000.0)
    eth = bars_of("ETH", T0, T0 + 3 * DAY, 7 * MINUTE_MS, 3_000.0)
    for i in range(0, len(btc), 500):
        for part, partition in ((btc[i:i + 500], 0), ([b for b in eth if btc[i].ts_last <= b.ts_last
                                                        < btc[min(i + 500, len(btc) - 1)].ts_last], 1)):
            for _p, key, value in feed(assets, sectors, part, partition, now=float(i)):
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
    btc_keys = [k for k in table if k.startswith("BTC|")]
    assert 2 * DAY // MINUTE_MS - 10 <= len(btc_keys) <= 2 * DAY // MINUTE_MS + 1, len(btc_keys)
    restarted = SectorStage(bundled_universe(), 0.0)
    restarted.configure(LATENESS, 10.0, [0, 1])
    restarted.rebuild(table.items())
    now = 1e6                                              # both partitions long quiet
    running = {v["sector"]: v for v in sectors.due_sectors(now)}
    assert restarted.held, "what the restored progress does not cover waits for the sources again"
    restarted.due_sectors(now)
    rebuilt = {v["sector"]: v for v in restarted.due_sectors(now + 30.0)}   # ... until they are quiet
    assert running["total"]["ts"] == max(b.ts_last for b in btc + eth)
    assert not differences(running, rebuilt)


def test_a_partition_catching_up_releases_the_backlog_in_slices_that_drain_it() -> None:
    """A lagging partition's progress jump does not apply a whole backlog in one call (the event
    loop would block): each call applies a bounded slice, and later calls drain the rest."""
    assets, sectors = stage_pair()
    btc = bars_of("BTC", T0, T0 + DAY, MINUTE_MS, 100_000.0)
    feed(assets, sectors, btc, 0, now=0.0)
    assert len(sectors.held) == len(btc)                  # ETH's partition has not reported yet
    feed(assets, sectors, bars_of("ETH", T0 + DAY - MINUTE_MS, T0 + DAY, MINUTE_MS, 3_000.0), 1, now=0.0)
    left = len(sectors.held)
    assert 0 < left <= len(btc) + 1 - RELEASE_SLICE
    calls = 0
    while sectors.held:
        sectors.due_sectors(now=0.0)
        calls += 1
        assert left - len(sectors.held) <= RELEASE_SLICE
        left = len(sectors.held)
    assert calls >= 2 and sectors.forced == 0
    assert sectors.now_ts == T0 + DAY - MINUTE_MS + 1
