"""The raw-frame journal of live mode: every frame the venues sent, kept on disk for 48 h and
replayed at start, so a restart on the in-memory embedded broker forgets nothing (docs/live.md).

Files in the journal directory, one per UTC hour of receipt time: the current hour is plain JSONL
(``frames-YYYYmmddHH.jsonl``, flushed every second, so a crash loses at most the last second and a
torn last line is skipped on replay); a finished hour is compressed to ``.jsonl.zst`` (in a background
thread: an hour of a busy feed is gigabytes, seconds of zstd the event loop must not wait for) and files
older than the kept span are deleted. The line format is the recorder's (``cryptopulse record``),
so a journal file is also a recording that ``cryptopulse replay`` reads.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard

from services.common.clock import HOUR_MS, now_ms
from services.common.frames import RawFrame
from services.common.settings import register, setting
from services.ingestor.sources import Unreadable, read_recording

log = logging.getLogger("cryptopulse.ingestor.journal")

KEEP_MS = 48 * HOUR_MS
FLUSH_EVERY_S = 1.0
NAME = re.compile(r"^frames-(\d{10})\.jsonl(\.zst)?$")


@register
@dataclass(frozen=True)
class JournalSettings:
    journal_dir: str = setting(
        "", "Directory of the live raw-frame journal (replayed at start, 48 h kept). Empty: no journal; "
            "`up --source live` sets it on the embedded broker (CRYPTOPULSE_JOURNAL, CRYPTOPULSE_DATA_DIR).")


def hour_of(ts: int) -> str:
    return datetime.fromtimestamp(ts // HOUR_MS * HOUR_MS / 1000, UTC).strftime("%Y%m%d%H")


def hour_start(name: str) -> int:
    return int(datetime.strptime(name, "%Y%m%d%H").replace(tzinfo=UTC).timestamp() * 1000)


class Journal:
    def __init__(self, directory: Path, keep_ms: int = KEEP_MS, clock: Callable[[], int] | None = None) -> None:
        self.directory = directory
        self.keep_ms = keep_ms
        self.clock = clock or now_ms
        self.directory.mkdir(parents=True, exist_ok=True)
        self._hour: str | None = None
        self._file: IO[bytes] | None = None
        self._flushed = time.monotonic()
        self.written = 0
        # finished hours are compressed and pruned here, one at a time (see the module docstring)
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    def files(self) -> list[tuple[str, Path]]:
        """(hour, path) of every journal file, oldest first (a plain and a compressed file of one
        hour can coexist after a crash mid-compression: the plain one is the complete one)."""
        found: dict[str, Path] = {}
        for path in self.directory.iterdir():
            match = NAME.match(path.name)
            if match and (match.group(1) not in found or not match.group(2)):
                found[match.group(1)] = path
        return sorted(found.items())

    def prune(self) -> None:
        """Compress finished hours left plain (a crash), delete hours older than the kept span."""
        current = hour_of(self.clock())
        oldest = self.clock() - self.keep_ms
        for hour, path in self.files():
            if hour_start(hour) + HOUR_MS <= oldest:
                for stale in (path, path.with_name(f"frames-{hour}.jsonl.zst")):
                    stale.unlink(missing_ok=True)
            elif path.suffix == ".jsonl" and hour != current and hour != self._hour:
                self._compress(path)

    def replay(self) -> Iterator[RawFrame]:
        """The kept frames, oldest first; torn or unreadable lines are skipped (counted in the log)."""
        self.prune()
        oldest = self.clock() - self.keep_ms
        skipped = 0
        for _hour, path in self.files():
            for item in read_recording(path):
                if isinstance(item, Unreadable):
                    skipped += 1
                elif item.ts_recv >= oldest:
                    yield item
        if skipped:
            log.warning("journal: %d unreadable lines skipped (a torn last line after a crash is normal)", skipped)

    def first_ts(self) -> int | None:
        """Receipt time of the oldest kept frame, if any."""
        return next((frame.ts_recv for frame in self.replay()), None)

    def write(self, frame: RawFrame) -> None:
        hour = hour_of(frame.ts_recv)
        if hour != self._hour:
            self._rotate(hour)
        assert self._file is not None
        self._file.write(orjson.dumps({"venue": frame.venue, "ts_recv": frame.ts_recv, "frame": frame.frame}) + b"\n")
        self.written += 1
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        self._flushed = time.monotonic()

    def _rotate(self, hour: str) -> None:
        previous = self._close_file()
        self._hour = hour
        self._file = (self.directory / f"frames-{hour}.jsonl").open("ab")
        self._background.submit(self._finish_hour, previous)

    def _finish_hour(self, previous: Path | None) -> None:
        """Compress the hour just closed, then prune (in the background thread)."""
        try:
            if previous is not None:
                self._compress(previous)
            self.prune()
        except OSError as exc:
            log.error("journal: compressing or pruning %s failed: %s", previous, exc)

    def _close_file(self) -> Path | None:
        if self._file is None:
            return None
        path = Path(self._file.name)
        self._file.close()
        self._file = None
        return path

    def _compress(self, path: Path) -> None:
        target = path.with_name(path.name + ".zst")
        partial = target.with_name(target.name + ".part")
        with path.open("rb") as src, partial.open("wb") as dst:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
        partial.replace(target)
        path.unlink()

    def wait_idle(self) -> None:
        """Wait for the background compression and pruning started so far (one worker: in order)."""
        self._background.submit(lambda: None).result()

    def close(self) -> None:
        self._background.shutdown(wait=True)
        path = self._close_file()
        if path is not None and self._hour != hour_of(self.clock()):
            self._compress(path)


async def journaled(live: AsyncIterator[Any], journal: Journal) -> AsyncIterator[Any]:
    """The journal's kept frames (as fast as they can be read), then the live frames, each written
    to the journal before it is handed on."""
    replayed = 0
    for frame in journal.replay():
        replayed += 1
        if replayed % 256 == 0:
            await asyncio.sleep(0)      # let the producer run while a long journal is read
        yield frame
    log.info("journal: %d frames replayed from %s; going live", replayed, journal.directory)
    try:
        async for item in live:
            if isinstance(item, RawFrame):
                journal.write(item)
            yield item
    finally:
        close = getattr(live, "aclose", None)
        if close is not None:
            await close()
        journal.close()
