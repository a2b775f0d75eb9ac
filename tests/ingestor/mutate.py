"""Mutation operators for fuzzing venue adapters with frames close to the real ones."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson

NASTY: tuple[Any, ...] = (None, True, False, 0, -1, 1e308, -0.0, "", "0", "-1", "NaN", "nan", "inf", "-inf",
                          "1e999", "1e-400", "abc", " 1", "1_000", "٣", [], {}, [1], {"a": 1}, 2**70, "x" * 300,
                          "BTCUSDT", "1000PEPEUSDT", "SELL", "BUY", "aggTrade", "forceOrder")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def mutate_structure(frame: str, rng: random.Random, replacement: Any = None, use_replacement: bool = False) -> str:
    """Replace, delete or rename one field anywhere in the document (or replace the document)."""
    doc = orjson.loads(frame)
    paths = _paths(doc)
    if not paths or rng.random() < 0.03:
        return _dumps(replacement if use_replacement else rng.choice(NASTY))
    path = rng.choice(paths)
    parent = _parent(doc, path)
    action = rng.random()
    if action < 0.15:
        del parent[path[-1]]
    elif action < 0.22:
        parent[path[-1] + "_"] = parent.pop(path[-1])
    else:
        parent[path[-1]] = replacement if use_replacement else rng.choice(NASTY)
    return _dumps(doc)


def _dumps(value: Any) -> str:
    """The stdlib encoder: unlike orjson it writes > 64-bit integers, NaN and Infinity (as Python does)."""
    return json.dumps(value, separators=(",", ":"))


def mutate_text(frame: str, rng: random.Random) -> str:
    """Byte-level damage: truncate, flip, insert, duplicate a slice."""
    if not frame:
        return frame
    action = rng.random()
    cut = rng.randrange(len(frame))
    if action < 0.25:
        return frame[:cut]
    if action < 0.5:
        return frame[:cut] + chr(rng.randrange(0x20, 0x2FF)) + frame[cut + 1:]
    if action < 0.75:
        return frame[:cut] + rng.choice(['"', "{", "}", ",", ":", "]", "\\", "\x00", "1e9"]) + frame[cut:]
    end = min(len(frame), cut + rng.randrange(1, 40))
    return frame[:end] + frame[cut:end] + frame[end:]


def mutate(frame: str, rng: random.Random) -> str:
    """Zero to three mutations (a quarter of the frames stay intact, as in a real stream)."""
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        frame = mutate_structure(frame, rng) if rng.random() < 0.7 else mutate_text(frame, rng)
        try:
            orjson.loads(frame)
        except orjson.JSONDecodeError:
            break
    return frame
