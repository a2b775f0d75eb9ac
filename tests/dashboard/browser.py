"""Helpers of the dashboard tests: Debian's chromium under Playwright, the gateway's own values,
and the report-style formatting the page must show (written independently of the page's JS)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import websockets
from playwright.async_api import Browser, ViewportSize, async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATIC = Path(__file__).resolve().parents[2] / "services" / "gateway" / "static"
LAPTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
MINUS = "\u2212"
DASH = "\u2014"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            await browser.close()


def usd(x: float | None) -> str:
    """$3.38T, $42.50B, $853.0M, $12.3K, $950.00, $0 (U+2212 for negatives)."""
    if x is None:
        return DASH
    if x == 0:
        return "$0"
    sign = MINUS if x < 0 else ""
    a = abs(x)
    for scale, suffix, digits in ((1e12, "T", 2), (1e9, "B", 2), (1e6, "M", 1), (1e3, "K", 1)):
        scaled = round(a / scale, digits)
        if scaled >= 1 and (suffix == "T" or scaled < 1000):
            return f"{sign}${scaled:.{digits}f}{suffix}"
    return f"{sign}${a:.2f}"


def pct(x: float | None) -> str:
    """+38.2%, −14.6%, 0.0%."""
    if x is None:
        return DASH
    text = f"{abs(x):.1f}"
    if float(text) == 0:
        return f"{text}%"
    return f"{MINUS if x < 0 else '+'}{text}%"


async def gateway_values(url: str, channels: list[str], required: list[str] | None = None,
                         timeout: float = 15) -> dict[str, dict[str, Any]]:
    """The latest value the gateway serves on each of ``channels`` that has data (its snapshot), read by
    a plain ws client; waits until every ``required`` channel (default: all) has one."""
    must = set(channels if required is None else required)
    values: dict[str, dict[str, Any]] = {}
    synced = False
    deadline = time.monotonic() + timeout
    async with websockets.connect(url, open_timeout=timeout) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "channels": channels}).decode())
        await ws.send(orjson.dumps({"op": "ping", "id": "sync"}).decode())  # answered after the snapshots
        while not synced or must - set(values):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no data within {timeout} s for {sorted(must - set(values))}")
            message = orjson.loads(await asyncio.wait_for(ws.recv(), left))
            if message.get("type") in ("snapshot", "update"):
                values[message["channel"]] = message["data"]
            elif message.get("type") == "pong":
                synced = True
            elif message.get("type") == "error":
                raise AssertionError(f"gateway error: {message}")
    return values


def expected_headline(values: dict[str, dict[str, Any]]) -> dict[str, str]:
    """data-testid -> text the page must show, for whichever of the total, AI and 24 h liquidation
    channels are in ``values`` (the gateway's current values)."""
    expected: dict[str, str] = {}
    if "sector:total" in values:
        total = values["sector:total"]
        expected.update({"total-cap": usd(total["cap_usd"]), "total-change": pct(total["change_24h_pct"])})
    if "sector:ai" in values:
        ai = values["sector:ai"]
        expected.update({"ai-cap": usd(ai["cap_usd"]), "ai-change": pct(ai["change_24h_pct"])})
    if "liquidations:24h:all" in values:
        liq = values["liquidations:24h:all"]
        expected.update({"liq-24h-long": usd(liq["long_usd"]), "liq-24h-total": usd(liq["total_usd"])})
    return expected
