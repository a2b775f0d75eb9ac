"""Parse + normalize throughput per venue, side by side with ``orjson.loads`` alone on the same frames,
and (optionally) with cryptofeed's own normalization of the same frames.

    python -m bench.ingest_parse [--frames N] [--repeat R]

Frames are recorded-style (``tests.ingestor.fakes.samples``: 1-3 trades per frame, a liquidation
every 50 frames, a control frame every 100), for every venue (Binance USD-M included). Target:
adapter rate >= 40% of the orjson rate. HTX frames are timed as HTX sends them (gzip): its adapter
rate includes inflating, the orjson column does not.

cryptofeed runs in its own interpreter (never in this project's venv): point ``CRYPTOFEED_PYTHON``
at a throwaway venv's python with cryptofeed installed, e.g.
``python3 -m venv /tmp/cf && /tmp/cf/bin/pip install cryptofeed`` then
``CRYPTOFEED_PYTHON=/tmp/cf/bin/python python -m bench.ingest_parse``. The child feeds the same
frames to cryptofeed's exchange ``message_handler`` offline (symbol maps preloaded, no network).
Target: adapter >= 5x cryptofeed.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from services.ingestor.instruments import load_instruments
from services.ingestor.venues import registry
from tests.ingestor.fakes.samples import VENUES, recorded_frames

CRYPTOFEED_CHILD = Path(__file__).with_name("ingest_parse_cryptofeed.py")


CHUNK = 500


def measure(venue: str, frames: list[str], repeat: int) -> tuple[float, float, int]:
    """(orjson frames/s, adapter frames/s, events). The frames are timed in chunks of ``CHUNK``,
    orjson and the adapter back to back on each chunk, keeping each chunk's fastest of ``repeat``
    rounds: load from other processes on this shared machine hits both alike and mostly drops out."""
    adapter = registry.get(venue, load_instruments(venue))
    parse, loads, ts_recv, clock = adapter.parse, orjson.loads, 1_737_972_001_000, time.perf_counter
    inflate = getattr(adapter, "frame_text", None)
    if inflate is not None:          # HTX: frames arrive gzip-compressed; inflating is part of the work
        wire = {frame: gzip.compress(frame.encode(), mtime=0) for frame in frames}

        def parse(frame: str, ts: int) -> list[Any]:
            return adapter.parse(inflate(wire[frame]), ts)
    events = sum(len(parse(frame, ts_recv)) for frame in frames)
    chunks = [frames[i:i + CHUNK] for i in range(0, len(frames), CHUNK)]
    best_orjson = [float("inf")] * len(chunks)
    best_adapter = [float("inf")] * len(chunks)
    gc.collect()
    for _ in range(repeat):
        for index, chunk in enumerate(chunks):
            start = clock()
            for frame in chunk:
                loads(frame)
            middle = clock()
            for frame in chunk:
                parse(frame, ts_recv)
            end = clock()
            best_orjson[index] = min(best_orjson[index], middle - start)
            best_adapter[index] = min(best_adapter[index], end - middle)
    return len(frames) / sum(best_orjson), len(frames) / sum(best_adapter), events


def cryptofeed_rates(python: str, frames_by_venue: dict[str, list[str]],
                     repeat: int) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.json"
        path.write_bytes(orjson.dumps(frames_by_venue))
        proc = subprocess.run([python, str(CRYPTOFEED_CHILD), str(path), str(repeat)], capture_output=True,
                              text=True, timeout=600, check=False)
    if proc.returncode != 0:
        print(f"cryptofeed: child failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        return {}
    result: dict[str, float | int | str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    # JSON frames only, so orjson.loads alone runs on exactly the same input (text pongs left out)
    frames_by_venue = {venue: [frame for frame in recorded_frames(venue, args.frames) if frame.startswith("{")]
                       for venue in VENUES}
    cryptofeed_python = os.environ.get("CRYPTOFEED_PYTHON")
    cf: dict[str, float | int | str] = {}
    if cryptofeed_python:
        cf = cryptofeed_rates(cryptofeed_python, frames_by_venue, args.repeat)
    print(f"{len(frames_by_venue[VENUES[0]])} recorded-style JSON frames per venue; per {CHUNK}-frame chunk the "
          f"fastest of {args.repeat} rounds (orjson and adapter back to back)")
    print(f"{'venue':<9} {'events':>7} {'orjson.loads/s':>15} {'parse+norm/s':>13} {'vs orjson':>9} "
          f"{'cryptofeed/s':>13} {'vs cryptofeed':>13}")
    notes: list[str] = []
    for venue, frames in frames_by_venue.items():
        orjson_rate, adapter_rate, events = measure(venue, frames, args.repeat)
        cf_value = cf.get(venue, "skipped")
        if isinstance(cf_value, (int, float)):
            cf_cols = f"{cf_value:>13,.0f} {adapter_rate / cf_value:>12.1f}x"
            notes.append(f"cryptofeed {venue}: {cf.get(venue + ':events')} events, "
                         f"{cf.get(venue + ':failed_frames')} frames raised")
        else:
            cf_cols = f"{str(cf_value)[:13]:>13} {'-':>13}"
            if cryptofeed_python:
                notes.append(f"cryptofeed {venue}: {cf_value}")
        print(f"{venue:<9} {events:>7} {orjson_rate:>15,.0f} {adapter_rate:>13,.0f} "
              f"{adapter_rate / orjson_rate:>8.0%} {cf_cols}")
    for note in notes:
        print(note)
    if not cryptofeed_python:
        print("cryptofeed: skipped (set CRYPTOFEED_PYTHON)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
