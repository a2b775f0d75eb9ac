"""Abusive and careless clients against a real gateway on a real broker, over real sockets:
a client that stops reading, a ping flood, odd close codes, odd HTTP, missing Origin, a token
that expires mid-session."""

from __future__ import annotations

import asyncio
import http.client
import time

import jwt
import pytest
import websockets

from services.common import topics
from services.gateway import metrics
from services.gateway.protocol import Close
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import produce, recv, recv_until, send
from tests.gateway.rawws import Closed, RawClient

SECRET = "abuse-test-secret-of-at-least-32-bytes"


async def wait_for(condition, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def test_a_client_that_stops_reading_is_closed_within_two_heartbeats(broker) -> None:  # type: ignore[no-untyped-def]
    heartbeat = 1.0

    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_heartbeat_seconds=heartbeat) as gateway:
            port = gateway.settings.gateway_port
            client = await asyncio.to_thread(RawClient, port, rcvbuf=4096)
            client.send_json({"op": "subscribe", "id": 1, "channels": ["sector:*"]})
            await wait_for(lambda: bool(gateway.patterns), 5)
            pad = "x" * 65536  # ~6.5 MB in all: more than the socket buffers hold, less than the byte budget
            await produce(broker.bootstrap, [(topics.SECTOR_CAPS.name, f"s{i}", {"pad": pad}) for i in range(100)])
            stalled = time.monotonic()
            await wait_for(lambda: not gateway.clients, 4 * heartbeat + 10)
            assert time.monotonic() - stalled <= 2 * heartbeat + 2.0  # + the time to read the records
            client.close()

    asyncio.run(scenario())


def test_control_frames_count_against_the_rate_limit(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_rate_limit=20.0) as gateway:
            client = await asyncio.to_thread(RawClient, gateway.settings.gateway_port)

            def flood_then_read() -> int | None:
                for _ in range(2000):
                    try:
                        client.send_ping(b"x" * 100)
                    except OSError:
                        break
                try:
                    while True:
                        client.recv_json()
                except Closed as closed:
                    return closed.code

            assert await asyncio.to_thread(flood_then_read) == Close.LIMIT_EXCEEDED
            await wait_for(lambda: not gateway.clients, 5)
            client.close()

    asyncio.run(scenario())


def test_unknown_close_codes_are_counted_as_other(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap) as gateway:
            other = metrics.DISCONNECTS.labels("other")._value.get()
            for code in (3000, 4999):
                ws = await websockets.connect(ws_url(gateway))
                await wait_for(lambda: len(gateway.clients) == 1, 5)
                await ws.close(code)
                await wait_for(lambda: not gateway.clients, 5)
            assert metrics.DISCONNECTS.labels("other")._value.get() == other + 2
            labels = {s.labels.get("code") for m in metrics.DISCONNECTS.collect() for s in m.samples}
            assert "3000" not in labels and "4999" not in labels

    asyncio.run(scenario())


def http_call(port: int, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """A raw HTTP/1.1 exchange: the bytes after the head are read until the server closes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    head = {k.lower(): v for k, v in response.getheaders()}
    rest = response.fp.read() if response.fp is not None else b""  # for HEAD: anything the server wrongly sent
    conn.close()
    return response.status, rest, head


def test_http_methods_head_and_paths(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap) as gateway:
            port = gateway.settings.gateway_port
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                status, _, head = await asyncio.to_thread(http_call, port, method, "/healthz")
                assert status == 405 and head["allow"] == "GET, HEAD", method
            status, body, head = await asyncio.to_thread(http_call, port, "HEAD", "/healthz")
            assert status == 200 and body == b"" and head["content-length"] == "3"
            status, body, _ = await asyncio.to_thread(http_call, port, "GET", "/healthz")
            assert (status, body) == (200, b"ok\n")
            for path in ("/static/%00", "/static/%2e%2e/settings.py", "/static/..%2fsettings.py", "/static/",
                         "/static/%ff%fe", "/static/a%5c..%5c..%5csettings.py"):
                status, _, _ = await asyncio.to_thread(http_call, port, "GET", path)
                assert status == 404, path

    asyncio.run(scenario())


def test_missing_origin_is_allowed_by_default_and_can_be_refused(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_allowed_origins=("https://ok.example",)) as gateway:
            async with websockets.connect(ws_url(gateway)) as ws:  # no Origin header: not a browser
                await send(ws, {"op": "ping", "id": 1})
                assert (await recv(ws))["type"] == "pong"
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(ws_url(gateway), origin="https://evil.example")  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
        async with running_gateway(broker.bootstrap, gateway_allowed_origins=("https://ok.example",),
                                   gateway_allow_missing_origin=False) as gateway:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(ws_url(gateway))
            assert refused.value.response.status_code == 403

    asyncio.run(scenario())


def test_a_token_expires_mid_session_unless_refreshed(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_auth_secret=SECRET) as gateway:
            exp = int(time.time()) + 3
            short = jwt.encode({"exp": exp, "aud": "any-audience", "channels": ["sector:*"]}, SECRET)
            async with websockets.connect(f"{ws_url(gateway)}?token={short}") as expiring, \
                    websockets.connect(f"{ws_url(gateway)}?token={short}") as refreshed:
                for ws in (expiring, refreshed):
                    await send(ws, {"op": "subscribe", "id": 1, "channels": ["sector:ai"]})
                    assert (await recv_until(ws, lambda m: m["type"] in ("ack", "error")))[-1]["type"] == "ack"
                longer = jwt.encode({"exp": exp + 60, "channels": ["sector:*", "asset:*"]}, SECRET)
                await send(refreshed, {"op": "refresh", "id": 2, "token": longer})
                ack = (await recv_until(refreshed, lambda m: m["type"] in ("ack", "error")))[-1]
                assert (ack["type"], ack["op"]) == ("ack", "refresh")
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    errors = await recv_until(expiring, lambda m: m["type"] == "error", timeout=8)
                    assert errors[-1]["code"] == "token_expired"
                    await recv(expiring, 5)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == Close.AUTH_FAILED
                assert exp - 0.1 <= time.time() <= exp + 2.0
                await asyncio.sleep(max(0.0, exp + 0.5 - time.time()))
                await send(refreshed, {"op": "subscribe", "id": 3, "channels": ["asset:BTC"]})
                assert (await recv_until(refreshed, lambda m: m["type"] in ("ack", "error")))[-1]["type"] == "ack"

    asyncio.run(scenario())
