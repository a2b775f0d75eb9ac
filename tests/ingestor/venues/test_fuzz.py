"""Fuzz every venue adapter: each mutated frame yields valid canonical events or a FrameError with
a known reason class, never another exception (so the ingestor publishes or dead-letters it).

Two layers per venue: hypothesis strategies (structure-aware mutations of recorded-style frames,
shrinking to a minimal failing frame), and a seeded bulk loop of ``FUZZ_FRAMES`` mutated frames
(default 100,000 per venue; ``CRYPTOPULSE_FUZZ_FRAMES`` lowers it on a slow machine).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.events import Liquidation, Trade
from services.ingestor.instruments import load_instruments
from services.ingestor.venues import registry
from services.ingestor.venues.base import ADAPTER_ERROR, REASON_CLASSES, FrameError
from services.ingestor.venues.common import MAX_FRAME_CHARS, Adapter
from tests.ingestor.fakes.samples import CONTROL_FRAMES, VENUES, recorded_frames

FUZZ_FRAMES = int(os.environ.get("CRYPTOPULSE_FUZZ_FRAMES", "100000"))
SEEDS = 200
TS_RECV = 1_737_972_001_000

JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                        st.sampled_from(("NaN", "Infinity", "-Infinity", "-1", "0", "1e400", "0.0", "", "BUY")))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
NASTY_NUMBERS: tuple[Any, ...] = ("NaN", "nan", "Infinity", "-Infinity", "inf", "-1", "-0.5", "0", "0.0", "1e400",
                                  "-1e400", "1e308", 0, -1, -2.5, 1e308, -1e308, 2**63 - 1, "1" * 40, "0x10", "")
SWAPS: tuple[Any, ...] = (None, True, False, 0, -7, 3.5, "", "x", [], {}, [1, 2], {"a": 1}, "BTCUSDT", "buy")
TEXT_TOKENS = ("NaN", "Infinity", "-Infinity", "1e999", "-0", "null", "[]", "{}", '"', "\\", "\x00", "\ud800")


_FIELDS = {kind: tuple(field.name for field in dataclasses.fields(kind)) for kind in (Trade, Liquidation)}


def check(adapter: Adapter, frame: str | bytes) -> str:
    """Parse one frame: 'events' (each a valid canonical event) or the FrameError's reason class."""
    try:
        events = adapter.parse(frame, TS_RECV)
    except FrameError as exc:
        assert exc.reason_class in REASON_CLASSES and exc.reason_class != ADAPTER_ERROR, exc.reason_class
        return exc.reason_class
    assert isinstance(events, list)
    for event in events:
        kind = Trade if isinstance(event, Trade) else Liquidation
        assert isinstance(event, kind)
        # raises InvalidEvent on NaN/inf/<=0 amounts, bad enums, empty ids, negative timestamps
        kind.from_dict({name: getattr(event, name) for name in _FIELDS[kind]})
        assert event.exchange == adapter.id
    return "events"


# -- mutations on the decoded JSON tree ------------------------------------------------------------

def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (key/index sequences) to every non-empty object or array of a decoded frame."""
    if isinstance(node, dict):
        children: Any = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return []
    found = [prefix] if node else []
    for key, child in children:
        found += _paths(child, (*prefix, key))
    return found


@functools.cache
def _seed_paths(seed: str) -> list[tuple[Any, ...]]:
    return _paths(orjson.loads(seed))


def _mutate_tree(tree: Any, rng: random.Random, values: tuple[Any, ...], paths: list[tuple[Any, ...]]) -> None:
    """Replace, delete or retype one slot of one container of ``tree`` (in place)."""
    holder = tree
    try:
        for step in rng.choice(paths):
            holder = holder[step]
        if not isinstance(holder, (dict, list)) or not holder:
            return
        key: Any = rng.choice(list(holder)) if isinstance(holder, dict) else rng.randrange(len(holder))
    except (KeyError, IndexError, TypeError, ValueError):     # an earlier mutation changed the shape
        return
    if isinstance(holder, dict) and rng.random() < 0.25:
        del holder[key]                                  # missing field
    else:
        value = rng.choice(values)                       # type swap / nasty number / unknown value
        holder[key] = orjson.loads(orjson.dumps(value)) if isinstance(value, (list, dict)) else value


def _dump(tree: Any) -> str:
    try:
        return orjson.dumps(tree).decode()
    except (orjson.JSONEncodeError, TypeError):
        return "{}"


def mutate(frame: str, rng: random.Random, venue_symbols: tuple[str, ...]) -> str:
    """One seeded mutation of ``frame`` (text-level or structure-level)."""
    roll = rng.random()
    if roll < 0.12:                                       # truncation
        return frame[:rng.randrange(len(frame) + 1)]
    if roll < 0.24:                                       # byte flips
        chars = list(frame)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
        return "".join(chars)
    if roll < 0.30:                                       # invalid JSON tokens spliced in
        cut = rng.randrange(len(frame) + 1)
        return frame[:cut] + rng.choice(TEXT_TOKENS) + frame[cut:]
    try:
        tree = orjson.loads(frame)
    except orjson.JSONDecodeError:                        # text control frames (pong)
        return frame + rng.choice(TEXT_TOKENS)
    paths = _seed_paths(frame)
    if not paths:
        return _dump(tree)
    if roll < 0.50:
        _mutate_tree(tree, rng, NASTY_NUMBERS, paths)
    elif roll < 0.75:
        _mutate_tree(tree, rng, SWAPS, paths)
    elif roll < 0.85:                                     # unknown event / channel / table names
        _mutate_tree(tree, rng, ("unknownEvent", "trade", "trades", "update", "match", "insert", "publicTrade.X",
                                 "allLiquidation.", "futures.trades", "subscription", "liquidation-orders"), paths)
    elif roll < 0.95:                                     # unknown or foreign instruments
        _mutate_tree(tree, rng, ("NOPEUSDT", "BTC-USDT-SWAP", "XBTUSD", "BTC_USDT", "BTC-USD", *venue_symbols), paths)
    else:                                                 # several mutations at once
        for _ in range(rng.randint(2, 5)):
            _mutate_tree(tree, rng, NASTY_NUMBERS + SWAPS, paths)
    return _dump(tree)


def _adapter(venue: str) -> Adapter:
    adapter = registry.get(venue, load_instruments(venue))
    assert isinstance(adapter, Adapter)
    return adapter


@pytest.mark.parametrize("venue", VENUES)
def test_bulk_mutations(venue: str) -> None:
    adapter = _adapter(venue)
    seeds = recorded_frames(venue, SEEDS)
    assert all(check(adapter, frame) == "events" for frame in seeds if frame not in CONTROL_FRAMES[venue])
    symbols = tuple(adapter.instruments)[:5]
    rng = random.Random(f"fuzz:{venue}")
    outcomes: Counter[str] = Counter()
    for _ in range(FUZZ_FRAMES):
        outcomes[check(adapter, mutate(rng.choice(seeds), rng, symbols))] += 1
    outcomes[check(adapter, seeds[0] + " " * MAX_FRAME_CHARS)] += 1       # oversized
    outcomes[check(adapter, seeds[0].encode()[: len(seeds[0]) // 2] + b"\xff\xfe")] += 1
    assert sum(outcomes.values()) == FUZZ_FRAMES + 2    # every frame accounted for: events or a reason
    assert outcomes["events"] > 0 and outcomes["oversized"] >= 1 and outcomes["invalid_json"] > 0
    assert outcomes["bad_field"] > 0 and outcomes["bad_value"] > 0
    assert all(check(adapter, frame) == "events" for frame in seeds if frame not in CONTROL_FRAMES[venue])


def _property(venue: str) -> Callable[[], None]:
    adapter = _adapter(venue)
    seeds = recorded_frames(venue, 30)

    @settings(max_examples=150, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(seed=st.sampled_from(seeds), path=st.lists(st.integers(0, 50), min_size=1, max_size=4),
           value=JSON_VALUES, delete=st.booleans())
    def prop(seed: str, path: list[int], value: Any, delete: bool) -> None:
        try:
            tree = orjson.loads(seed)
        except orjson.JSONDecodeError:
            check(adapter, seed + str(value))
            return
        node = tree
        for step in path[:-1]:
            if isinstance(node, (dict, list)) and node:
                child = list(node.values())[step % len(node)] if isinstance(node, dict) else node[step % len(node)]
                if isinstance(child, (dict, list)):
                    node = child
        if isinstance(node, dict) and node:
            key = list(node)[path[-1] % len(node)]
            if delete:
                del node[key]
            else:
                node[key] = value
        elif isinstance(node, list) and node:
            node[path[-1] % len(node)] = value
        check(adapter, _dump(tree))

    return prop  # type: ignore[no-any-return]


@pytest.mark.parametrize("venue", VENUES)
def test_hypothesis_field_mutations(venue: str) -> None:
    _property(venue)()
