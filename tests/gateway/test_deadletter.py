"""Unusable derived records go to the dead-letter topic; the gateway keeps serving the good ones."""

from __future__ import annotations

import asyncio

import orjson
import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.common import topics
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import produce, recv_until, send


def test_bad_derived_records_are_dead_lettered(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> list[dict]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        await producer.send_and_wait(topics.SECTOR_CAPS.name, b"{not json", key=b"ai")
        await producer.send_and_wait(topics.SECTOR_CAPS.name, b'{"sector":"ai"}', key=None)
        await producer.stop()
        async with running_gateway(broker.bootstrap) as gateway, websockets.connect(ws_url(gateway)) as ws:
            await send(ws, {"op": "subscribe", "id": 1, "channels": ["sector:ai"]})
            await produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "v": 1})])
            got = await recv_until(ws, lambda m: m["type"] == "update")
            assert got[-1]["data"] == {"sector": "ai", "v": 1}
        consumer = AIOKafkaConsumer(topics.DEADLETTER.name, bootstrap_servers=broker.bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=5000)
            return [orjson.loads(r.value) for records in batches.values() for r in records]
        finally:
            await consumer.stop()

    letters = asyncio.run(scenario())
    assert sorted(letter["reason"].split(" (")[0] for letter in letters) == [
        "record without key or value", "value is not JSON"]
    assert all(letter["source"] == f"gateway:{topics.SECTOR_CAPS.name}" for letter in letters)
    assert any(letter["raw"] == "{not json" for letter in letters)
