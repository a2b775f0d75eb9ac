"""Where frames come from: recordings (replay), plugged-in sources (the scenario), or live websockets.

Every source is an async iterator of :class:`RawFrame` (or :class:`Unreadable` for a recording
line that is not a frame, which the service dead-letters). Finite sources are paced by their
recorded ``ts_recv`` divided by ``speed`` (``None`` = as fast as possible).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from services.common.errors import StartupError
from services.common.frames import RawFrame
from services.common.topics import Topic
from services.ingestor.venues.base import Instrument

REPLAY_PREFIX = "replay:"


class SourceError(StartupError):
    """A source that cannot be opened; the message is a one-line, actionable error."""


@dataclass(slots=True, frozen=True)
class Unreadable:
    """A recording line that is not a RawFrame: dead-lettered with ``reason``."""

    source: str
    raw: str
    reason: str
    ts_recv: int


def parse_speed(text: str | float | None) -> float | None:
    """``max`` -> None (no pacing); ``N`` -> N (N x real time, > 0)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("max", "")):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise SourceError(f"speed must be a positive number or 'max', got {text!r}") from None
    if not speed > 0:
        raise SourceError(f"speed must be a positive number or 'max', got {text!r}")
    return speed


class Pacer:
    """Sleeps so that frames come out at ``speed`` x their recorded receipt-time spacing."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._origin: tuple[int, float] | None = None

    async def wait(self, ts_recv: int) -> None:
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (ts_recv, time.monotonic())
            return
        first_ts, first_wall = self._origin
        delay = first_wall + (ts_recv - first_ts) / 1000.0 / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".zst":
        try:
            import zstandard
        except ImportError:
            raise SourceError(f"{path} is zstd-compressed: pip install zstandard") from None
        raw = zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
        return io.TextIOWrapper(raw, encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def read_recording(path: Path) -> Iterator[RawFrame | Unreadable]:
    """The lines of a JSONL recording (plain or ``.zst``) as frames; bad lines as :class:`Unreadable`."""
    if not path.is_file():
        raise SourceError(f"recording {path} does not exist")
    with _open_text(path) as lines:
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text:
                continue
            try:
                item = orjson.loads(text)
                yield RawFrame(venue=item["venue"], frame=item["frame"], ts_recv=int(item["ts_recv"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                yield Unreadable("replay", text, f"invalid_recording: line {number}: {type(exc).__name__}",
                                 time.time_ns() // 1_000_000)


async def paced(items: Iterable[RawFrame | Unreadable], speed: float | None,
                yield_every: int = 256) -> AsyncIterator[RawFrame | Unreadable]:
    """An iterable of frames as an async iterator paced by ``speed`` (cooperative at max speed)."""
    pacer = Pacer(speed)
    for count, item in enumerate(items):
        if isinstance(item, RawFrame):
            await pacer.wait(item.ts_recv)
        if count % yield_every == 0:
            await asyncio.sleep(0)
        yield item


class RecordingWriter:
    """Appends RawFrames as JSONL (zstd-compressed when the path ends in ``.zst``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("wb")
        self._sink: Any = self._file
        if path.suffix == ".zst":
            try:
                import zstandard
            except ImportError:
                self._file.close()
                raise SourceError(f"writing {path} needs zstd: pip install zstandard") from None
            self._sink = zstandard.ZstdCompressor().stream_writer(self._file)
        self.count = 0

    def write(self, frame: RawFrame) -> None:
        self._sink.write(orjson.dumps({"venue": frame.venue, "ts_recv": frame.ts_recv, "frame": frame.frame}))
        self._sink.write(b"\n")
        self.count += 1

    def close(self) -> None:
        if self._sink is not self._file:
            self._sink.close()   # also closes the underlying file
        else:
            self._file.close()


class PluggedSource(Protocol):
    """A finite source plugged in by the wiring (``services.catalog``), e.g. the built-in scenario."""

    def reference_records(self) -> Iterable[tuple[Topic, str, dict[str, Any]]]: ...
    def frames(self) -> Iterator[RawFrame]: ...
    def describe(self) -> str: ...


InstrumentTables = Callable[[str], Mapping[str, Instrument]]


class Opener(Protocol):
    """Opens a plugged source; the ingestor hands it its settings and the venues' instrument tables."""

    def __call__(self, settings: Any, *, instruments: InstrumentTables, density: float | None = None) -> PluggedSource:
        ...


_PLUGGED: dict[str, Opener] = {}


def plug(name: str, opener: Opener) -> None:
    """Make ``--source NAME`` run what ``opener`` returns."""
    _PLUGGED[name] = opener


def plugged() -> tuple[str, ...]:
    return tuple(_PLUGGED)


def open_plugged(name: str, settings: Any, **overrides: Any) -> PluggedSource:
    from services.ingestor.instruments import load_instruments

    return _PLUGGED[name](settings, instruments=load_instruments, **overrides)


def replay_path(source: str) -> Path | None:
    return Path(source[len(REPLAY_PREFIX):]).expanduser() if source.startswith(REPLAY_PREFIX) else None
