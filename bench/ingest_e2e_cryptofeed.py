"""Child of ``bench.ingest_e2e``: cryptofeed with its own Kafka backend, on the same frames and broker.

Runs under the cryptofeed venv (``CRYPTOFEED_PYTHON``); imports nothing from this project but its
sibling ``ingest_parse_cryptofeed`` (the offline feed objects). Per venue: cryptofeed's
``TradeKafka`` / ``LiquidationsKafka`` callbacks (aiokafka, acks=all, writing to the same topics as
the ingestor) are connected first; then every frame goes to the feed's ``message_handler`` and the
clock stops when the callbacks' queues are drained, i.e. every record was acknowledged. Prints one
JSON line ``{venue: {"frames", "records", "errors", "cpu", "wall"}}``.

    python bench/ingest_e2e_cryptofeed.py FRAMES.json BOOTSTRAP TRADES_TOPIC LIQUIDATIONS_TOPIC
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import sys
import time
from types import SimpleNamespace
from typing import Any

from ingest_parse_cryptofeed import GZIP, SYMBOLS, offline_feed


class _Errors(logging.Handler):
    """Counts the send errors cryptofeed's Kafka writer logs (it logs and goes on)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "error" in record.getMessage().lower() or "Messages may not have been delivered" in record.getMessage():
            self.count += 1


async def run_venue(venue: str, frames: list[Any], bootstrap: str, trades_topic: str,
                    liquidations_topic: str) -> dict[str, float]:
    from cryptofeed.backends.kafka import LiquidationsKafka, TradeKafka
    from cryptofeed.defines import LIQUIDATIONS, TRADES

    class Trades(TradeKafka):
        def topic(self, data: dict[str, Any]) -> str:
            return trades_topic

    class Liquidations(LiquidationsKafka):
        def topic(self, data: dict[str, Any]) -> str:
            return liquidations_topic

    config = {"bootstrap_servers": bootstrap, "acks": "all", "client_id": f"cryptofeed-{venue}"}
    callbacks = [Trades(**config), Liquidations(**config)]
    written = [0]

    def counted(callback: Any) -> Any:
        async def call(obj: Any, receipt_timestamp: float) -> None:
            written[0] += 1
            await callback(obj, receipt_timestamp)
        return call

    loop = asyncio.get_running_loop()
    for callback in callbacks:
        callback.start(loop)
    while not all(callback.running for callback in callbacks):
        await asyncio.sleep(0.01)
    class_name, symbols, address = SYMBOLS[venue]
    feed = offline_feed(class_name, symbols, [0], {TRADES: [counted(callbacks[0])],
                                                    LIQUIDATIONS: [counted(callbacks[1])]})
    conn = SimpleNamespace(address=address, uuid=f"{venue}-e2e")
    handler = feed.message_handler
    wall, cpu = time.perf_counter(), time.process_time()
    for frame in frames:
        try:
            await handler(frame, conn, time.time())
        except Exception:    # control frames cryptofeed does not know: not records
            pass
    for callback in callbacks:
        await callback.queue.join()         # every record sent and acknowledged
    result = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
              "frames": len(frames), "records": written[0]}
    for callback in callbacks:
        await callback.stop()
        await callback.worker
    return result


def main() -> None:
    errors = _Errors()
    logging.getLogger("feedhandler").addHandler(errors)
    logging.getLogger("feedhandler").setLevel(logging.INFO)
    logging.getLogger("feedhandler").propagate = False
    with open(sys.argv[1], encoding="utf-8") as source:
        frames_by_venue: dict[str, list[str]] = json.load(source)
    bootstrap, trades_topic, liquidations_topic = sys.argv[2:5]
    out: dict[str, Any] = {}
    for venue, frames in frames_by_venue.items():
        if venue not in SYMBOLS:
            continue
        wire: list[Any] = [gzip.compress(f.encode(), mtime=0) for f in frames] if venue in GZIP else frames
        before = errors.count
        result = asyncio.run(run_venue(venue, wire, bootstrap, trades_topic, liquidations_topic))
        out[venue] = {**result, "errors": errors.count - before}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
