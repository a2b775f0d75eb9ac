"""Every venue adapter through the ingestor's own pipeline: each recorded-style or mutated frame is
either published (trade/liquidation records) or dead-lettered with the adapter's reason class;
none is lost and none reaches the pipeline's adapter_error safety net. A frame with good and bad
rows publishes the good ones and dead-letters each bad row alone, as a one-row frame that the
adapter rejects for the same reason."""

from __future__ import annotations

import random

import orjson
import pytest

from services.common import topics
from services.common.frames import RawFrame
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import DEADLETTER, IGNORED, OK, Pipeline
from services.ingestor.venues import registry
from services.ingestor.venues.base import FrameError
from tests.ingestor.fakes.samples import VENUES, recorded_frames
from tests.ingestor.venues.test_fuzz import mutate

FRAMES = 3000


def _utf8(frame: str) -> bool:
    try:
        frame.encode()
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("venue", VENUES)
def test_frames_are_published_or_dead_lettered(venue: str) -> None:
    adapter = registry.get(venue, load_instruments(venue))
    seeds = recorded_frames(venue, 300)
    rng = random.Random(f"pipeline:{venue}")
    frames = seeds + [mutate(rng.choice(seeds), rng, ()) for _ in range(FRAMES)]
    # a websocket text frame is valid UTF-8: lone surrogates (a fuzz token) cannot arrive from the network
    frames = [frame for frame in frames if _utf8(frame)]
    expected_reasons: list[str] = []
    for frame in frames:
        try:
            parsed = adapter.parse_frame(frame, 1)
        except FrameError as exc:
            expected_reasons.append(exc.reason_class)
            continue
        rows = parsed.rejected if parsed.events else parsed.rejected[:1]
        expected_reasons += [row.reason_class for row in rows]
    pipeline = Pipeline({venue: adapter})
    records = [record for i, frame in enumerate(frames)
               for record in pipeline.process(RawFrame(venue, frame, 1_737_972_000_000 + i))]
    letters = [orjson.loads(value) for topic, _, value in records if topic == topics.DEADLETTER.name]
    assert pipeline.stats[OK] + pipeline.stats[IGNORED] + pipeline.stats[DEADLETTER] == len(frames)
    assert sorted(letter["reason"].split(":")[0] for letter in letters) == sorted(expected_reasons)
    assert pipeline.stats[OK] > 0 and letters
    for letter in letters:
        if letter["reason"].split(": ", 2)[1].startswith("row ") and letter["raw"] not in frames:   # a row's letter
            with pytest.raises(FrameError) as err:
                adapter.parse(letter["raw"], 1)
            assert err.value.reason_class == letter["reason"].split(":")[0]
    published = {topic for topic, _, _ in records} - {topics.DEADLETTER.name}
    assert topics.TRADES.name in published
