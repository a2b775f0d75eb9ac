"""The HTTP API of a real gateway process, validated against schemas/openapi.json by openapi-core;
its payloads are the websocket's messages byte for byte; auth and grants as on the websocket."""

from __future__ import annotations

import asyncio
import http.client
import time
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import orjson
import websockets
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from services.common import topics
from services.common.topics import SCHEMA_DIR
from services.gateway.httpapi import HTTP_ERROR_CODES
from tests.gateway.helpers import gateway_env, produce, recv_until, send, wait_ready

SPEC = OpenAPI.from_path(SCHEMA_DIR / "openapi.json")  # validates the document itself (OpenAPI 3.1)
SECRET = "http-api-test-secret-of-32-bytes!!"


def call(port: int, target: str, token: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request; the response is validated against the OpenAPI document when the path is in it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, target, headers=headers)
    response = conn.getresponse()
    body = response.read()
    head = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    if target.startswith("/v1/") and method == "GET":
        url = urlsplit(target)
        request = Request(EnvironBuilder(base_url=f"http://127.0.0.1:{port}", path=url.path, query_string=url.query,
                                         method=method, headers=headers).get_environ())
        SPEC.validate_response(WerkzeugOpenAPIRequest(request),
                               WerkzeugOpenAPIResponse(Response(body, status=response.status, headers=head)))
    return response.status, head, body


def test_http_api_matches_the_document_and_the_websocket(broker, services) -> None:  # type: ignore[no-untyped-def]
    offsets = asyncio.run(produce(broker.bootstrap, [
        (topics.SECTOR_CAPS.name, "ai", {"sector": "ai", "cap_usd": float(i)}) for i in range(5)
    ] + [(topics.LIQUIDATION_TOTALS.name, "24h:asset:BTC", {"window": "24h", "usd": 1.5})]))
    env = gateway_env(broker.bootstrap, CRYPTOPULSE_GATEWAY_AUTH_SECRET=SECRET, CRYPTOPULSE_GATEWAY_HISTORY_SIZE="3")
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    wait_ready(port, services("gateway", env=env))
    token = jwt.encode({"exp": int(time.time()) + 300, "channels": ["sector:*", "liquidations:*"]}, SECRET)
    narrow = jwt.encode({"exp": int(time.time()) + 300, "channels": ["liquidations:*"]}, SECRET)

    status, _, body = call(port, "/v1/channels", token)
    listing = orjson.loads(body)
    assert status == 200
    assert {c["channel"] for c in listing["channels"]} == {"sector:ai", "liquidations:24h:asset:BTC"}
    assert {f["family"] for f in listing["families"]} >= {"sector", "alerts"}
    assert [c["channel"] for c in orjson.loads(call(port, "/v1/channels", narrow)[2])["channels"]] == \
        ["liquidations:24h:asset:BTC"]

    status, _, snapshot = call(port, "/v1/snapshot/sector:ai", token)
    assert status == 200 and orjson.loads(snapshot)["seq"] == offsets[4]
    assert call(port, "/v1/snapshot/" + quote("liquidations:24h:asset:BTC", safe=""), token)[0] == 200

    async def websocket_snapshot() -> dict[str, Any]:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token}") as ws:
            await send(ws, {"op": "subscribe", "id": 1, "channels": ["sector:ai"]})
            return (await recv_until(ws, lambda m: m["type"] == "snapshot"))[-1]

    ws_snapshot = asyncio.run(websocket_snapshot())
    http_snapshot = orjson.loads(snapshot)
    assert http_snapshot["data"] == ws_snapshot["data"] == {"sector": "ai", "cap_usd": 4.0}
    assert {k: v for k, v in http_snapshot.items() if k != "ts"} == {k: v for k, v in ws_snapshot.items() if k != "ts"}

    history = orjson.loads(call(port, "/v1/history/sector:ai?limit=10", token)[2])
    assert [m["seq"] for m in history["messages"]] == offsets[2:5] and history["complete"]
    assert [m["data"]["cap_usd"] for m in history["messages"]] == [2.0, 3.0, 4.0]
    after = orjson.loads(call(port, f"/v1/history/sector:ai?since={offsets[2]}&limit=1", token)[2])
    assert [m["seq"] for m in after["messages"]] == [offsets[3]] and after["complete"]
    gap = orjson.loads(call(port, f"/v1/history/sector:ai?since={offsets[0]}", token)[2])
    assert not gap["complete"] and [m["seq"] for m in gap["messages"]] == offsets[2:5]

    errors = {
        "/v1/snapshot/sector:ai": (401, "auth_failed", None),
        "/v1/snapshot/sector:*": (400, "unknown_channel", token),
        "/v1/snapshot/weather:paris": (400, "unknown_channel", token),
        "/v1/snapshot/sector:nothing": (404, "no_data", token),
        "/v1/snapshot/sector:ai ": (403, "forbidden", narrow),
        "/v1/history/sector:ai?limit=0": (400, "bad_request", token),
        "/v1/history/sector:ai?limit=1001": (400, "bad_request", token),
        "/v1/history/sector:ai?since=abc": (400, "bad_request", token),
    }
    for target, (expected, code, with_token) in errors.items():
        status, _, body = call(port, target.replace(" ", ""), with_token)
        assert (status, orjson.loads(body)["code"]) == (expected, code), target
    document = orjson.loads((SCHEMA_DIR / "openapi.json").read_bytes())
    assert set(document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]) == set(HTTP_ERROR_CODES)

    status, head, body = call(port, "/openapi.json")
    assert status == 200 and orjson.loads(body)["openapi"] == "3.1.0" and head["content-type"] == "application/json"
