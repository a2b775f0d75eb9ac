"""Gateway restart: a client (raw RFC 6455 socket, independent of `websockets`) sees 4004, reconnects
to the restarted process and resumes with no gap and no duplicate."""

from __future__ import annotations

import asyncio

import pytest

from services.common import topics
from services.gateway.protocol import Close
from tests.gateway.helpers import gateway_env, produce, wait_ready
from tests.gateway.rawws import Closed, RawClient

ALERTS = topics.ALERTS.name


def alerts(numbers: range) -> list[tuple[str, str, dict[str, int | str]]]:
    return [(ALERTS, "drawdown", {"kind": "drawdown", "n": n}) for n in numbers]


def test_restart_and_resume_with_independent_client(broker, services) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(produce(broker.bootstrap, alerts(range(0, 3))))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    first = services("gateway", env=env, name="gateway1")
    wait_ready(port, first)
    client = RawClient(port)
    client.send_json({"op": "subscribe", "id": 1, "channels": ["alerts:drawdown"]})
    seen = [m for m in client.recv_until(lambda m: m["type"] == "snapshot") if m["type"] != "ack"]
    asyncio.run(produce(broker.bootstrap, alerts(range(3, 5))))
    seen += client.recv_until(lambda m: m["data"]["n"] == 4)
    first.process.terminate()
    with pytest.raises(Closed) as closed:
        client.recv_until(lambda m: False)
    assert closed.value.code == Close.SHUTDOWN
    client.close()
    assert first.process.wait(8) == 0
    asyncio.run(produce(broker.bootstrap, alerts(range(5, 9))))
    second = services("gateway", env=env, name="gateway2")
    wait_ready(port, second)
    client = RawClient(port)
    client.send_json({"op": "subscribe", "id": 2, "channels": ["alerts:drawdown"],
                      "since": {"alerts:drawdown": seen[-1]["seq"]}})
    replay = [m for m in client.recv_until(lambda m: m.get("data", {}).get("n") == 8) if m["type"] != "ack"]
    client.close()
    data = seen + replay
    assert [m["data"]["n"] for m in data] == list(range(2, 9))
    assert all(m["type"] == "update" for m in replay)
    for before, after in zip(data, data[1:], strict=False):
        assert after["prev"] == before["seq"]
