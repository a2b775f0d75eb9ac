"""A fake Binance USD-M futures market-data server: a real ``websockets`` server on loopback.

It speaks the combined-stream protocol: the streams come from the URL
(``/stream?streams=btcusdt@aggTrade/!forceOrder@arr``), frames are wrapped as
``{"stream": ..., "data": ...}``, ``SUBSCRIBE`` messages are answered with
``{"result": null, "id": N}``, and the server pings every ``ping_interval`` seconds (Binance
pings; the client must answer). One market feeds every connection: a trade gets the next
sequential aggregate id of its symbol and is sent to every connection subscribed to its stream,
so overlapping connections see the same ids. Test controls: drop every connection, go silent
(no data, per channel), skip ids (a gap), burst.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve

from services.common.broker import free_port

BASE_TS = 1_737_975_600_000


class FakeBinance:
    def __init__(self, ping_interval: float | None = 1.0) -> None:
        self.port = free_port()
        self.ping_interval = ping_interval
        self.connects = 0
        self.streams_per_connect: list[list[str]] = []
        self.clients: dict[ServerConnection, set[str]] = {}
        self.next_id: dict[str, int] = {}
        self.published: dict[str, list[int]] = {}     # symbol -> ids offered to the market
        self.delivered: dict[str, set[int]] = {}       # symbol -> ids sent to at least one client
        self.silent: set[str] = set()                  # channels not sent: "trades", "liquidations"
        self.clock = BASE_TS
        self._server: Server | None = None

    @property
    def url(self) -> str:
        """Base URL to give the runtime (it appends ``/stream?streams=...``)."""
        return f"ws://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeBinance:
        self._server = await serve(self._handle, "127.0.0.1", self.port, ping_interval=self.ping_interval,
                                   ping_timeout=self.ping_interval, compression=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        streams = [s for value in query.get("streams", []) for s in value.split("/") if s]
        self.connects += 1
        self.streams_per_connect.append(streams)
        self.clients[ws] = set(streams)
        try:
            async for message in ws:
                request = orjson.loads(message)
                if request.get("method") == "SUBSCRIBE":
                    self.clients[ws].update(request.get("params", []))
                await ws.send(orjson.dumps({"result": None, "id": request.get("id")}).decode())
        except Exception:  # a client vanishing mid-message is normal here
            pass
        finally:
            self.clients.pop(ws, None)

    async def _broadcast(self, stream: str, channel: str, data: dict[str, object]) -> int:
        if channel in self.silent:
            return 0
        frame = orjson.dumps({"stream": stream, "data": data}).decode()
        sent = 0
        for ws, streams in list(self.clients.items()):
            if stream in streams:
                with contextlib.suppress(Exception):
                    await ws.send(frame)
                    sent += 1
        return sent

    async def trade(self, symbol: str = "BTCUSDT", price: str = "101681.4", qty: str = "0.012",
                    maker: bool = False) -> int:
        """One aggTrade with the symbol's next id, to every subscribed client; returns the id."""
        agg_id = self.next_id.get(symbol, 1_000_000)
        self.next_id[symbol] = agg_id + 1
        self.clock += 7
        self.published.setdefault(symbol, []).append(agg_id)
        data = {"e": "aggTrade", "E": self.clock + 1, "a": agg_id, "s": symbol, "p": price, "q": qty,
                "f": agg_id * 2, "l": agg_id * 2 + 1, "T": self.clock, "m": maker}
        if await self._broadcast(f"{symbol.lower()}@aggTrade", "trades", data):
            self.delivered.setdefault(symbol, set()).add(agg_id)
        return agg_id

    def skip(self, symbol: str, count: int) -> None:
        """Let ``count`` trades happen that no client receives (a gap)."""
        self.next_id[symbol] = self.next_id.get(symbol, 1_000_000) + count

    async def liquidation(self, symbol: str = "BTCUSDT", side: str = "SELL", qty: str = "0.5") -> None:
        self.clock += 11
        order = {"s": symbol, "S": side, "o": "LIMIT", "f": "IOC", "q": qty, "p": "100000", "ap": "100100",
                 "X": "FILLED", "l": qty, "z": qty, "T": self.clock}
        data = {"e": "forceOrder", "E": self.clock, "o": order}
        await self._broadcast("!forceOrder@arr", "liquidations", data)
        await self._broadcast(f"{symbol.lower()}@forceOrder", "liquidations", data)

    async def burst(self, symbol: str, count: int) -> list[int]:
        return [await self.trade(symbol) for _ in range(count)]

    async def drop_all(self) -> None:
        """Abort every connection (no close handshake), as a network failure would."""
        for ws in list(self.clients):
            ws.transport.abort()
        self.clients.clear()
        await asyncio.sleep(0)

    async def wait_for_clients(self, count: int, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.clients) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(self.clients)} clients connected, expected {count}")
            await asyncio.sleep(0.02)
