"""The total-cap chart shows the whole daily history the processor holds (the backfilled closes of
``cryptopulse.candle-history`` before the live candles) with zoom and pan, and the page says where
the data comes from: Debian's chromium against a real gateway process on the embedded broker."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Page, expect

from services.common import topics
from tests.conftest import ARTIFACTS
from tests.dashboard import feed
from tests.dashboard.browser import LAPTOP, PHONE, chromium
from tests.gateway.helpers import gateway_env, produce, wait_ready

pytestmark = pytest.mark.timeout(120)

LIVE_DAYS = 8  # the replayed week and the forming day; every older day comes from the backfill


def history_records() -> list[feed.Record]:
    closes = feed._closes()
    backfill = len(closes) - LIVE_DAYS
    records: list[feed.Record] = []
    for index in range(backfill):
        candle = feed.candle_and_indicators(closes, index, True, feed.FIRST_DAY + (index + 1) * feed.DAY_MS - 1)[0][2]
        records.append((topics.CANDLE_HISTORY.name, "total:1d", candle))
    for index in range(backfill, len(closes)):
        closed = index < len(closes) - 1
        records += feed.candle_and_indicators(closes, index, closed, feed.FIRST_DAY + (index + 1) * feed.DAY_MS - 1)
    status = [{"kind": "assets", "source": "bundled", "as_of": "2025-01-27", "assets": 30, "ts": feed.NOW},
              {"kind": "ingest", "source": "scenario", "description": "scenario 2025-01-27 week", "ts": feed.NOW}]
    records += [(topics.REFERENCE_STATUS.name, value["kind"], value) for value in status]
    return records + feed.sector_records()


async def chart(page: Page) -> dict[str, int]:
    attrs = await page.get_by_test_id("cap-chart").evaluate(
        "el => ({points: +el.dataset.points, total: +el.dataset.total, first: +el.dataset.first, "
        "last: +el.dataset.last})")
    return dict(attrs)


def test_chart_shows_the_backfilled_history_with_zoom_and_pan_and_the_source(broker, services) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(produce(broker.bootstrap, history_records()))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    wait_ready(port, services("gateway", env=env))
    days = feed.DAYS
    first_day, last_day = feed.FIRST_DAY, feed.FIRST_DAY + (days - 1) * feed.DAY_MS

    async def run() -> list[str]:
        async with chromium() as browser:
            page = await browser.new_page(viewport=LAPTOP)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{port}/")
            svg = page.get_by_test_id("cap-chart")
            await expect(svg).to_have_attribute("data-points", str(days), timeout=15_000)
            assert await chart(page) == {"points": days, "total": days, "first": first_day, "last": last_day}
            await expect(page.get_by_test_id("data-source")).to_have_text("scenario")
            await expect(page.get_by_test_id("ref-asof")).to_have_text("2025-01-27 (bundled)")
            live_sma = await page.evaluate("() => window.cryptopulse.store.series().filter(p => p.sma50).length")
            assert live_sma == LIVE_DAYS, "indicator values only where the processor emitted them"

            await page.get_by_test_id("zoom-in").click()
            zoomed = await chart(page)
            assert zoomed["points"] == days // 2 and zoomed["last"] == last_day  # anchored at the newest day
            box = await svg.bounding_box()
            assert box is not None
            y = box["y"] + box["height"] / 2
            await page.mouse.move(box["x"] + 200, y)
            await page.mouse.down()
            await page.mouse.move(box["x"] + 600, y, steps=5)  # drag right: towards older days
            await page.mouse.up()
            panned = await chart(page)
            assert panned["points"] == zoomed["points"] and panned["last"] < last_day
            assert panned["first"] < zoomed["first"]
            await page.get_by_test_id("zoom-all").click()
            assert (await chart(page))["points"] == days
            await page.mouse.move(box["x"] + box["width"] * 0.3, y)
            await page.mouse.wheel(0, -400)
            wheeled = await chart(page)
            assert wheeled["points"] < days and wheeled["first"] > first_day and wheeled["last"] < last_day
            await page.get_by_test_id("zoom-out").click()
            await page.get_by_test_id("zoom-out").click()
            assert (await chart(page))["points"] == days
            await page.set_viewport_size(PHONE)
            await page.wait_for_timeout(300)
            assert (await chart(page))["points"] == days, "the whole history on a phone too"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-history-phone.png"), full_page=True)
            return errors

    assert asyncio.run(run()) == []


