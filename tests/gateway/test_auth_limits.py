"""JWT auth (HS256 and RS256, expiry, channel permissions), origin allow-list, connection limit."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.gateway.protocol import Close
from tests.gateway.conftest import running_gateway, ws_url
from tests.gateway.helpers import recv, recv_until, send

SECRET = "test-secret-of-at-least-32-bytes!!"


def hs256(**claims: object) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")


async def rejected_with(url: str, code: int, **kwargs: object) -> str:
    async with websockets.connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        error = await recv(ws)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
        return str(error["code"])


def test_tokens_are_required_and_limit_channels(broker) -> None:  # type: ignore[no-untyped-def]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_auth_secret=SECRET, gateway_auth_public_key=public,
                                   gateway_auth_issuer="cryptopulse") as gateway:
            url = ws_url(gateway)
            assert await rejected_with(url, Close.AUTH_FAILED) == "auth_failed"
            assert await rejected_with(f"{url}?token=garbage", Close.AUTH_FAILED) == "auth_failed"
            expired = jwt.encode({"exp": int(time.time()) - 10, "iss": "cryptopulse"}, SECRET, algorithm="HS256")
            assert await rejected_with(f"{url}?token={expired}", Close.AUTH_FAILED) == "auth_failed"
            assert await rejected_with(f"{url}?token={hs256(iss='other')}", Close.AUTH_FAILED) == "auth_failed"
            wrong_key = jwt.encode({"exp": int(time.time()) + 60, "iss": "cryptopulse"}, "x" * 40, algorithm="HS256")
            assert await rejected_with(f"{url}?token={wrong_key}", Close.AUTH_FAILED) == "auth_failed"

            token = hs256(iss="cryptopulse", channels=["sector:*", "asset:BTC"])
            async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                await send(ws, {"op": "subscribe", "id": 1, "channels": ["sector:ai", "asset:BTC"]})
                assert (await recv(ws))["type"] == "ack"
                await send(ws, {"op": "subscribe", "id": 2, "channels": ["asset:ETH"]})
                error = await recv(ws)
                assert error["type"] == "error" and error["code"] == "forbidden" and error["id"] == 2
                await send(ws, {"op": "subscribe", "id": 3, "channels": ["asset:*"]})
                assert (await recv(ws))["code"] == "forbidden"

            rs = jwt.encode({"exp": int(time.time()) + 60, "iss": "cryptopulse"}, key, algorithm="RS256")
            async with websockets.connect(f"{url}?token={rs}") as ws:
                await send(ws, {"op": "subscribe", "id": 4, "channels": ["alerts:*"]})
                assert (await recv_until(ws, lambda m: m["type"] in ("ack", "error")))[-1]["type"] == "ack"

    asyncio.run(scenario())


def test_origin_allow_list_and_connection_limit(broker) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with running_gateway(broker.bootstrap, gateway_allowed_origins=("https://ok.example",),
                                   gateway_max_connections=2) as gateway:
            url = ws_url(gateway)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url, origin="https://evil.example")  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
            first = await websockets.connect(url, origin="https://ok.example")  # type: ignore[arg-type]
            second = await websockets.connect(url, origin="https://ok.example")  # type: ignore[arg-type]
            await send(first, {"op": "ping", "id": 1})
            await send(second, {"op": "ping", "id": 1})
            await recv(first)
            await recv(second)
            assert await rejected_with(url, Close.LIMIT_EXCEEDED, origin="https://ok.example") == "too_many_connections"
            await send(first, {"op": "ping", "id": 2})
            assert (await recv(first))["type"] == "pong"
            await first.close()
            await second.close()

    asyncio.run(scenario())
