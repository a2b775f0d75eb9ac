"""The ``--source scenario`` source (plugged into the ingestor by ``services.catalog``): the 2025-01-27
week as exchange frames.

``open_scenario(...)`` returns a :class:`Scenario`: the candle-history records to publish first,
the frames in ``ts_recv`` order (a generator: memory stays flat at any density), and a one-line
description for ``cryptopulse up``. When the frames are exhausted the ingestor holds (or exits,
``CRYPTOPULSE_HOLD=false``); the derived topics then keep the state as of 2025-01-27 23:59 UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.common.frames import RawFrame
from services.common.settings import load
from services.common.topics import CANDLE_HISTORY, Topic
from services.scenario.backfill import history_candles
from services.scenario.figures import utc_date
from services.scenario.generator import FrameGenerator
from services.scenario.paths import DAY_MINUTES, MINUTE_MS, START_MS, WEEK_MINUTES
from services.scenario.settings import ScenarioSettings
from services.scenario.wire import VENUES, InstrumentTables

NAME = "2025-01-27-deepseek"


@dataclass
class Scenario:
    instruments: InstrumentTables = field(repr=False)
    density: float
    seed: int
    bad_fraction: float = 0.0
    dup_fraction: float = 0.0
    start_minute: int = 0
    end_minute: int = WEEK_MINUTES
    generator: FrameGenerator | None = field(default=None, repr=False)

    def _new_generator(self) -> FrameGenerator:
        return FrameGenerator(self.instruments, density=self.density, seed=self.seed, bad_fraction=self.bad_fraction,
                              dup_fraction=self.dup_fraction, start_minute=self.start_minute,
                              end_minute=self.end_minute)

    def reference_records(self) -> Iterable[tuple[Topic, str, dict[str, Any]]]:
        for candle in history_candles():
            yield CANDLE_HISTORY, f"{candle['series']}:{candle['interval']}", candle

    def frames(self) -> Iterator[RawFrame]:
        """The frames (a fresh pass each call); :attr:`generator` then lists the malformed ones."""
        self.generator = self._new_generator()
        return self.generator.frames()

    def malformed(self) -> list[RawFrame]:
        """Exactly the malformed frames of :meth:`frames` (from a full pass if none was made)."""
        if self.generator is None:
            for _ in self.frames():
                pass
        assert self.generator is not None
        return list(self.generator.malformed)

    def describe(self) -> str:
        first = START_MS + self.start_minute * MINUTE_MS
        last = START_MS + (self.end_minute - 1) * MINUTE_MS
        days = f"{utc_date(first)}..{utc_date(last)[-2:]}" if self.end_minute - self.start_minute > DAY_MINUTES \
            else utc_date(first)
        count = len(FrameGenerator.traded_assets())
        return (f"scenario {NAME}: {days}, {count} assets, {len(VENUES)} venues, density {self.density:g}/min, "
                f"seed {self.seed}, bad {self.bad_fraction:g}, duplicates {self.dup_fraction:g}")


def open_scenario(settings: Any = None, *, instruments: InstrumentTables, density: float | None = None,
                  seed: int | None = None, start: int | None = None, end: int | None = None,
                  bad_fraction: float | None = None, dup_fraction: float | None = None) -> Scenario:
    """The scenario with ``CRYPTOPULSE_SCENARIO_*`` settings, overridden by the arguments.

    ``settings`` is the caller's (ingestor) settings object, unused: the scenario reads its own.
    ``instruments`` gives each venue's instrument table (the ingestor hands its own in), so the
    frames carry the symbols, price scales and contract sizes the venue adapters expect.
    ``start``/``end`` are epoch ms bounds of event time (default: the whole week).
    """
    config = load(ScenarioSettings, scenario_density=density, scenario_seed=seed,
                  scenario_bad_fraction=bad_fraction, scenario_dup_fraction=dup_fraction)
    first = 0 if start is None else max(0, (start - START_MS) // MINUTE_MS)
    last = WEEK_MINUTES if end is None else min(WEEK_MINUTES, -(-(end - START_MS) // MINUTE_MS))
    return Scenario(instruments, config.scenario_density, config.scenario_seed, config.scenario_bad_fraction,
                    config.scenario_dup_fraction, first, last)
