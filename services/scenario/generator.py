"""The scenario's frame generator (pure, seeded, deterministic; memory-light).

Per minute, per traded asset and venue, the planned USD notional (daily volume x intraday profile x
venue share) is added to a carry; the minute's trades (``density`` per minute on average,
fractional densities allowed) take the carry, split at random. A trade closes every hour on Binance
at ``CLOSE_OFFSET_MS`` (the latest timestamp of the minute, at the path's close) and every venue
trades in each day's last minute, which empties the carry: each day's volume and close are the
planned ones whatever the density. Liquidations are planned per asset, day and side, independently
of density. Malformed frames (a seeded fraction) and duplicates (another seeded fraction) are
mixed in; :attr:`FrameGenerator.malformed` lists the malformed ones exactly.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from services.common.frames import RawFrame
from services.scenario.design import Design, build_design
from services.scenario.paths import (
    CLOSE_OFFSET_MS,
    DAY_MINUTES,
    MINUTE_MS,
    START_MS,
    WEEK_MINUTES,
    Path,
    build_paths,
)
from services.scenario.wire import (
    BINANCE,
    BYBIT,
    OKX,
    VENUES,
    InstrumentTables,
    Market,
    find_market,
    liquidation_frame,
    trade_frame,
)

VOLUME_SHARE = {BINANCE: 0.5, BYBIT: 0.3, OKX: 0.2}
LIQUIDATION_SHARE = {BINANCE: 0.45, BYBIT: 0.35, OKX: 0.20}
# The week's last liquidation falls in its last minute: the liquidation windows end with the
# bucket of the latest liquidation (docs/semantics.md), so the 24 h window is the day 2025-01-27.
LAST_LIQUIDATION = (7, "BTC", "short")
MALFORMED_KINDS = ("invalid_json", "missing_price", "nan_price", "unknown_instrument", "negative_size")
# (container of the trade fields, price key, size key, symbol key) per venue's trade frame
_TRADE_FIELDS = {BINANCE: ("data", "p", "q", "s"), BYBIT: ("data0", "p", "v", "s"), OKX: ("data0", "px", "sz", "instId")}


def intraday_profile(day: int) -> list[float]:
    """Share of the day's volume in each minute (sums to 1): busier in US hours; on 2025-01-27 the
    selloff (Asia morning to the US open) concentrates activity."""
    weights = []
    for minute in range(DAY_MINUTES):
        w = 1.0 + 0.35 * math.sin(2 * math.pi * (minute - 780) / DAY_MINUTES)
        if day == 7:
            w += 2.5 * math.exp(-(((minute - 600) / 260) ** 2))
        weights.append(w)
    total = sum(weights)
    return [w / total for w in weights]


def liquidation_profile(volume_profile: list[float], day: int, side: str) -> list[float]:
    """When liquidations happen: like volume, except on 2025-01-27, when longs cascade into the
    15:00 low (half of them between 13:30 and 15:00) and shorts are caught by the rebound after it."""
    if day != 7:
        return volume_profile
    if side == "long":
        window = range(13 * 60 + 30, 15 * 60)
        bump = 1.0 / len(window)
        return [w + (bump if m in window else 0.0) for m, w in enumerate(volume_profile)]
    return [w * (3.0 if m >= 15 * 60 else 0.2) for m, w in enumerate(volume_profile)]


@dataclass
class _Book:
    """Per asset and venue: the market, id counters and the notional not yet traded."""

    market: Market
    phase: float
    next_id: int
    carry: float = 0.0
    last_price: float = 0.0


@dataclass
class FrameGenerator:
    instruments: InstrumentTables
    density: float = 1.0
    seed: int = 7
    bad_fraction: float = 0.0
    dup_fraction: float = 0.0
    start_minute: int = 0
    end_minute: int = WEEK_MINUTES
    design: Design = field(default_factory=build_design)
    malformed: list[RawFrame] = field(default_factory=list)
    duplicates: int = 0

    def __post_init__(self) -> None:
        if not self.density > 0:
            raise ValueError("density must be > 0")
        self.paths: dict[str, Path] = build_paths(self.design, self.seed)
        rng = random.Random(f"books:{self.seed}")
        self.books: dict[tuple[str, str], _Book] = {}
        for a in self.design.assets:
            reference = self.design.closes[a.asset][7]
            for venue in VENUES:
                self.books[(a.asset, venue)] = _Book(find_market(self.instruments, venue, a.asset, reference), rng.random(),
                                                     rng.randrange(10**8, 4 * 10**9))
        self.profiles = [intraday_profile(d) for d in range(8)]
        self.liquidation_profiles = {(d, side): liquidation_profile(self.profiles[d], d, side)
                                     for d in range(8) for side in ("long", "short")}

    @staticmethod
    def traded_assets() -> tuple[str, ...]:
        return tuple(a.asset for a in build_design().assets)

    # --- liquidations -------------------------------------------------------------------------
    def _liquidation_events(self) -> list[tuple[int, str, str, bool, float]]:
        """(ts, asset, venue, long, usd) of every planned liquidation, in time order."""
        rng = random.Random(f"liquidations:{self.seed}")
        events: list[tuple[int, str, str, bool, float]] = []
        taken: set[tuple[str, str, int]] = set()
        venues, shares = list(LIQUIDATION_SHARE), list(LIQUIDATION_SHARE.values())
        for budget in self.design.liquidations:
            weights = [rng.lognormvariate(0.0, 1.0) for _ in range(budget.count)]
            total = sum(weights)
            profile = self.liquidation_profiles[(budget.day, budget.side)]
            minutes = rng.choices(range(DAY_MINUTES), weights=profile, k=budget.count)
            if (budget.day, budget.asset, budget.side) == LAST_LIQUIDATION:
                minutes[0] = DAY_MINUTES - 1
            for w, minute in zip(weights, minutes, strict=True):
                venue = rng.choices(venues, weights=shares)[0]
                ts = START_MS + (budget.day * DAY_MINUTES + minute) * MINUTE_MS + rng.randrange(58_000)
                while (budget.asset, venue, ts) in taken:
                    ts += 1
                taken.add((budget.asset, venue, ts))
                events.append((ts, budget.asset, venue, budget.side == "long", budget.usd * w / total))
        events.sort()
        return events

    def _liquidation(self, rng: random.Random, event: tuple[int, str, str, bool, float],
                     residual: dict[tuple[str, bool, int], float]) -> RawFrame:
        ts, asset, venue, long, usd = event
        book = self.books[(asset, venue)]
        minute = (ts - START_MS) // MINUTE_MS
        key = (asset, long, minute // DAY_MINUTES)
        want = usd + residual.get(key, 0.0)
        mark = self.paths[asset].price_at(minute, (ts - START_MS) % MINUTE_MS)
        fill = mark * (0.996 if long else 1.004)
        market = book.market
        price = market.venue_price(fill)
        size = market.venue_size(want, float(price) / market.inst.price_scale)
        residual[key] = want - market.notional(price, size)
        bankruptcy = market.venue_price(fill * (0.997 if long else 1.003))
        text = liquidation_frame(market, long=long, price=price, bankruptcy=bankruptcy, size=size, ts=ts,
                                 event_ts=ts + rng.randrange(1, 20))
        return RawFrame(venue, text, ts + 20 + int(rng.expovariate(1 / 25)))

    # --- trades --------------------------------------------------------------------------------
    def _trades(self, rng: random.Random, minute: int) -> list[RawFrame]:
        day, in_day = divmod(minute, DAY_MINUTES)
        share_of_day = self.profiles[day][in_day]
        hour_close = in_day % 60 == 59
        day_close = in_day == DAY_MINUTES - 1
        base_ms = START_MS + minute * MINUTE_MS
        out: list[RawFrame] = []
        now_d, next_d = minute * self.density, (minute + 1) * self.density
        randrange, expovariate = rng.randrange, rng.expovariate
        for a in self.design.assets:
            path = self.paths[a.asset]
            minute_usd = self.design.volumes[a.asset][day] * share_of_day
            for venue in VENUES:
                book = self.books[(a.asset, venue)]
                book.carry += minute_usd * VOLUME_SHARE[venue]
                count = math.floor(next_d + book.phase) - math.floor(now_d + book.phase)
                if day_close or (hour_close and venue == BINANCE):
                    count = max(count, 1)
                if count == 0:
                    continue
                offsets = sorted(randrange(59_000) for _ in range(count))
                if venue == BINANCE and hour_close:
                    offsets[-1] = CLOSE_OFFSET_MS
                weights = [expovariate(1.0) for _ in range(count)]
                budget = book.carry / sum(weights)
                market = book.market
                for i in range(count):
                    offset = offsets[i]
                    price = market.venue_price(path.price_at(minute, offset))
                    want = book.carry if i == count - 1 else budget * weights[i]
                    value = float(price)
                    size = market.venue_size(want, value / market.inst.price_scale)
                    book.carry -= market.notional(price, size)
                    trade_id = book.next_id
                    book.next_id += 1
                    ts = base_ms + offset
                    tick, trade_uuid = "", ""
                    if venue == BYBIT:
                        tick = ("PlusTick" if value > book.last_price else
                                "MinusTick" if value < book.last_price else "ZeroPlusTick")
                        book.last_price = value
                        trade_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    text = trade_frame(market, trade_id=trade_id, price=price, size=size,
                                       taker_buy=rng.random() < 0.5, ts=ts, event_ts=ts + randrange(1, 20),
                                       tick=tick, uuid=trade_uuid, first_id=trade_id * 3)
                    out.append(RawFrame(venue, text, ts + 20 + int(expovariate(0.04))))
        return out

    # --- bad input -----------------------------------------------------------------------------
    def _malform(self, rng: random.Random, frame: RawFrame) -> RawFrame:
        """A broken variant of a trade frame (never a valid event)."""
        kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
        if kind == "invalid_json":
            text = frame.frame[: len(frame.frame) // 2]
        else:
            message = orjson.loads(frame.frame)
            container, price_key, size_key, symbol_key = _TRADE_FIELDS[frame.venue]
            fields = message["data"] if container == "data" else message["data"][0]
            if kind == "missing_price":
                del fields[price_key]
            elif kind == "nan_price":
                fields[price_key] = "NaN"
            elif kind == "negative_size":
                fields[size_key] = "-" + fields[size_key]
            else:
                fields[symbol_key] = "ZZZ" + fields[symbol_key]
                if frame.venue == OKX:
                    message["arg"]["instId"] = fields[symbol_key]
            text = orjson.dumps(message).decode()
        return RawFrame(frame.venue, text, frame.ts_recv + 1)

    # --- the stream ----------------------------------------------------------------------------
    def frames(self) -> Iterator[RawFrame]:
        """Every frame in ``ts_recv`` order (ties: generation order)."""
        rng = random.Random(f"trades:{self.seed}")
        bad_rng = random.Random(f"bad:{self.seed}")
        liquidations = [e for e in self._liquidation_events()
                        if self.start_minute * MINUTE_MS <= e[0] - START_MS < self.end_minute * MINUTE_MS]
        residual: dict[tuple[str, bool, int], float] = {}
        heap: list[tuple[int, int, RawFrame]] = []
        seq = 0
        li = 0
        for minute in range(self.start_minute, self.end_minute):
            batch = [(frame, True) for frame in self._trades(rng, minute)]
            horizon = START_MS + (minute + 1) * MINUTE_MS
            while li < len(liquidations) and liquidations[li][0] < horizon:
                batch.append((self._liquidation(rng, liquidations[li], residual), False))
                li += 1
            for frame, is_trade in batch:
                heapq.heappush(heap, (frame.ts_recv, seq, frame))
                seq += 1
                if is_trade and self.bad_fraction and bad_rng.random() < self.bad_fraction:
                    bad = self._malform(bad_rng, frame)
                    self.malformed.append(bad)
                    heapq.heappush(heap, (bad.ts_recv, seq, bad))
                    seq += 1
                if self.dup_fraction and bad_rng.random() < self.dup_fraction:
                    copy = RawFrame(frame.venue, frame.frame, frame.ts_recv + bad_rng.randrange(1, 5000))
                    self.duplicates += 1
                    heapq.heappush(heap, (copy.ts_recv, seq, copy))
                    seq += 1
            while heap and heap[0][0] < horizon:
                yield heapq.heappop(heap)[2]
        while heap:
            yield heapq.heappop(heap)[2]

