"""The live journal: hourly files, compressed when the hour is over, 48 h kept, torn lines skipped,
replayed before the live frames, which it records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from services.common.frames import RawFrame
from services.ingestor.journal import HOUR_MS, Journal, journaled

T0 = 1_780_300_800_000      # 2026-06-01 08:00 UTC


def frame(ts: int, n: int = 0) -> RawFrame:
    return RawFrame(venue="binance-usdm", frame=f'{{"n":{n}}}', ts_recv=ts)


def test_rotation_compression_bound_and_torn_lines(tmp_path: Path) -> None:
    now = [T0]
    journal = Journal(tmp_path, clock=lambda: now[0])
    for i in range(3):
        journal.write(frame(T0 + i * HOUR_MS + 5, i))
        now[0] = T0 + i * HOUR_MS + 10
    journal.flush()
    journal.wait_idle()          # finished hours are compressed off the event loop, in the background
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["frames-2026060108.jsonl.zst", "frames-2026060109.jsonl.zst", "frames-2026060110.jsonl"]
    with (tmp_path / "frames-2026060110.jsonl").open("ab") as torn:      # a crash mid-line
        torn.write(b'{"venue": "binance-usdm", "ts_r')
    assert [f.frame for f in Journal(tmp_path, clock=lambda: now[0]).replay()] == ['{"n":0}', '{"n":1}', '{"n":2}']
    later = Journal(tmp_path, clock=lambda: T0 + 49 * HOUR_MS + 1)             # 08:00's hour is past 48 h
    assert [f.frame for f in later.replay()] == ['{"n":1}', '{"n":2}']
    assert not (tmp_path / "frames-2026060108.jsonl.zst").exists()
    assert (tmp_path / "frames-2026060110.jsonl.zst").exists()              # a finished hour left plain is compressed
    assert later.first_ts() == T0 + HOUR_MS + 5


def test_journaled_replays_then_records_live(tmp_path: Path) -> None:
    clock = lambda: T0 + 100  # noqa: E731
    first = Journal(tmp_path, clock=clock)
    first.write(frame(T0 + 1, 1))
    first.close()

    async def live() -> AsyncIterator[RawFrame]:
        yield frame(T0 + 50, 2)
        yield frame(T0 + 60, 3)

    async def consume() -> list[str]:
        return [f.frame async for f in journaled(live(), Journal(tmp_path, clock=clock))]

    assert asyncio.run(consume()) == ['{"n":1}', '{"n":2}', '{"n":3}']
    assert [f.frame for f in Journal(tmp_path, clock=clock).replay()] == ['{"n":1}', '{"n":2}', '{"n":3}']
