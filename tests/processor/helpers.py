"""Helpers of the processor tests: synthetic trade bars and liquidations, Kafka I/O, comparisons."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.common.events import Liquidation, TradeBar
from services.processor.timeutil import minute_of

T0 = 1_737_936_000_000  # 2025-01-27 00:00 UTC


def bar(asset: str, ts_first: int, ts_last: int, prices: tuple[float, float, float, float], notional: float,
        count: int = 1, exchange: str = "binance-usdm", seq: int = 0, ts_recv: int | None = None,
        quote: str = "USDT") -> TradeBar:
    o, h, lo, c = prices
    first, last = f"{seq}", f"{seq + count - 1}"
    instrument = f"{asset}-{quote}-PERP"
    return TradeBar(id=f"{exchange}:{instrument}:{first}:{last}:{count}", exchange=exchange,
                    instrument=instrument, base=asset, quote=quote, market="perp", minute=minute_of(ts_first),
                    count=count, volume=notional / c, notional_usd=notional, buy_notional_usd=notional / 2,
                    open=o, high=h, low=lo, close=c, first_trade_id=first, last_trade_id=last,
                    ts_first=ts_first, ts_last=ts_last, ts_recv=ts_recv if ts_recv is not None else ts_last + 5)


def liquidation(asset: str, ts: int, side: str, notional: float, price: float, exchange: str = "okx",
                seq: int = 0) -> Liquidation:
    return Liquidation(exchange=exchange, symbol=f"{asset}USDT", instrument=f"{asset}-USDT-PERP", base=asset,
                       quote="USDT", market="perp", liquidated_side=side,  # type: ignore[arg-type]
                       price=price, size=notional / price, notional_usd=notional, id=f"{exchange}-{seq}", ts=ts,
                       ts_recv=ts + 3)


async def produce(bootstrap: str, topic: str, items: Iterable[tuple[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in items:
            data = value if isinstance(value, bytes) else orjson.dumps(value)
            await producer.send(topic, key=key.encode(), value=data)
        await producer.flush()
    finally:
        await producer.stop()


async def latest(bootstrap: str, topic: str, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """The latest value per key on every partition of ``topic`` (read to the current end)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while time.monotonic() < deadline and await behind():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    if r.value is not None:
                        out[r.key.decode()] = orjson.loads(r.value)
        return out
    finally:
        await consumer.stop()


def wait_until(check: Any, timeout: float, interval: float = 0.5) -> Any:
    """Call ``check()`` until it returns a truthy value; the last value (or an AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last: {last!r}")


def read_latest(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    return asyncio.run(latest(bootstrap, topic))


IGNORED = ("ts_emit",)


def close(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal values, floats within a relative 1e-9 (sums in another order); ts_emit ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = (set(a) | set(b)) - set(IGNORED)
        return all(close(a.get(k), b.get(k), rel) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return bool(a == b)


def differences(streamed: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Human-readable differences between two key -> value maps (empty when they agree)."""
    out = []
    for key in sorted(set(streamed) | set(expected)):
        if not close(streamed.get(key), expected.get(key)):
            out.append(f"{key}: streamed {streamed.get(key)} != expected {expected.get(key)}")
    return out
