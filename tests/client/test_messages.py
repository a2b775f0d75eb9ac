"""The client's pure parts: typed messages, resume positions (dedupe, reset, gap, since budget), backoff."""

from __future__ import annotations

import orjson
import pytest

from services.client import (
    Ack,
    Backoff,
    Error,
    History,
    Positions,
    ProtocolViolation,
    Snapshot,
    Update,
    parse,
)


def frame(kind: str, channel: str, seq: int, prev: int | None, epoch: str = "0-0-1", **extra: object) -> bytes:
    return orjson.dumps({"type": kind, "channel": channel, "seq": seq, "prev": prev, "epoch": epoch, "ts": 5,
                         "data": {"v": seq}, **extra})


def test_frames_become_typed_messages() -> None:
    snapshot = parse(frame("snapshot", "sector:ai", 4, 2, recovered=False))
    assert isinstance(snapshot, Snapshot) and not snapshot.recovered
    assert (snapshot.family, snapshot.key, snapshot.seq, snapshot.data) == ("sector", "ai", 4, {"v": 4})
    assert isinstance(parse(frame("update", "liquidations:24h:all", 9, 4)), Update)
    assert parse(frame("update", "liquidations:24h:all", 9, 4)).key == "24h:all"  # type: ignore[union-attr]
    assert isinstance(parse(frame("history", "candles:total:1d", 1, None)), History)
    assert parse(b'{"type":"ack","id":1,"op":"subscribe","channels":["a:b"],"ts":1}') == Ack(1, "subscribe", ("a:b",))
    assert parse(b'{"type":"error","id":2,"code":"forbidden","message":"no","ts":1}') == Error(2, "forbidden", "no")
    assert parse(b'{"type":"heartbeat","ts":1}') is None
    for bad in (b"{", b'{"type":"update","channel":"x"}', b"[]"):
        with pytest.raises(ProtocolViolation):
            parse(bad)


def test_positions_drop_what_was_seen_and_mark_gaps_and_resets() -> None:
    positions = Positions()
    first = positions.accept(parse(frame("snapshot", "alerts:x", 4, 2)))  # type: ignore[arg-type]
    assert first is not None and not first.gap and not first.reset
    assert positions.accept(parse(frame("update", "alerts:x", 4, 2))) is None  # type: ignore[arg-type]  # seen
    gap = positions.accept(parse(frame("update", "alerts:x", 9, 7)))  # type: ignore[arg-type]
    assert gap is not None and gap.gap and not gap.reset
    reset = positions.accept(parse(frame("update", "alerts:x", 0, None, epoch="0-0-99")))  # type: ignore[arg-type]
    assert reset is not None and reset.reset and not reset.gap
    assert positions.seen["alerts:x"] == ("0-0-99", 0)


def test_since_fits_the_frame_budget_and_prefers_event_channels() -> None:
    positions = Positions()
    for n in range(300):
        positions.accept(parse(frame("update", f"liquidations:24h:asset:A{n}", n + 1, None)))  # type: ignore[arg-type]
    positions.accept(parse(frame("update", "alerts:cascade", 7, None)))  # type: ignore[arg-type]
    since = positions.since(1000, prefer=("alerts",))
    assert len(orjson.dumps(since)) <= 1000
    assert since["alerts:cascade"] == {"seq": 7, "epoch": "0-0-1"}
    assert 10 < len(since) < 300


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.5, maximum=8.0)
    assert [backoff.delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff.delay(3, rand=lambda: 0.0) == 2.0
    assert backoff.delay(10_000, rand=lambda: 1.0) == 8.0
