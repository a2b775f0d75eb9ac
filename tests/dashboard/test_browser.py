"""The dashboard in Debian's chromium (Playwright): pure JS parts, then the page against a real gateway
process on the embedded broker, through a kill -9 and restart of the gateway."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page, expect

from services.common.broker import free_port
from tests.conftest import ARTIFACTS, ServiceProcess
from tests.dashboard import feed
from tests.dashboard.browser import (
    LAPTOP,
    PHONE,
    STATIC,
    chromium,
    expected_headline,
    gateway_values,
    pct,
    usd,
)
from tests.e2e.stack import SAMPLE
from tests.gateway.helpers import gateway_env, produce, wait_ready

pytestmark = pytest.mark.timeout(120)

HEADLINE = ["sector:total", "sector:ai", "liquidations:24h:all"]

FORMAT_CASES: list[tuple[str, float | None, str]] = [
    ("usd", 3.38e12, "$3.38T"), ("usd", 4.25e10, "$42.50B"), ("usd", 8.53e8, "$853.0M"),
    ("usd", 7.94e8, "$794.0M"), ("usd", 999.996e9, "$1.00T"), ("usd", 999.97e6, "$1.00B"),
    ("usd", -1.5e6, "\u2212$1.5M"), ("usd", 12_345.0, "$12.3K"), ("usd", 950.0, "$950.00"), ("usd", 0.0, "$0"),
    ("usd", None, "\u2014"), ("pct", -14.6, "\u221214.6%"), ("pct", 38.24, "+38.2%"),
    ("pct", 0.0, "0.0%"), ("pct", -0.04, "0.0%"), ("pct", None, "\u2014"),
]


async def load_pure_modules(page: Page) -> None:
    await page.set_content("<!doctype html><html><body></body></html>")
    for name in ("format.js", "store.js"):
        await page.add_script_tag(path=str(STATIC / name))


def test_formatting_and_store_in_browser() -> None:
    """Report-style numbers (page JS and this test's expectations agree with the literal cases); the
    store drops duplicate seqs, keys chart points by open_time, resets on recovered:false, and keeps
    resume requests under the gateway's frame limit."""
    for kind, value, text in FORMAT_CASES:
        assert {"usd": usd, "pct": pct}[kind](value) == text

    async def run() -> dict[str, Any]:
        async with chromium() as browser:
            page = await browser.new_page()
            await load_pure_modules(page)
            formatted = await page.evaluate(
                "cases => cases.map(([kind, value]) => window.cpFormat[kind](value))",
                [[k, v] for k, v, _ in FORMAT_CASES])
            store = await page.evaluate(STORE_SCRIPT)
            return {"formatted": formatted, "store": store}

    result = asyncio.run(run())
    assert result["formatted"] == [text for _, _, text in FORMAT_CASES]
    store = result["store"]
    assert store["points"] == [1000, 2000]
    assert store["closes"] == [11, 22]
    assert store["duplicates"] == 1
    assert store["after_reset"] == [3000]
    chart_group = store["groups"][0]
    assert chart_group["channels"] == ["candles:total:1d"]
    assert store["refill"] == {"op": "subscribe", "id": 99, "channels": ["candles:total:1d"],
                               "history": chart_group["history"]}
    assert store["first_requests"][0]["history"] == chart_group["history"]
    assert all("since" not in r for r in store["first_requests"])
    history_per_request = [r.get("history", 0) for r in store["first_requests"]]
    assert max(history_per_request) < 1000, "one request's history must fit the gateway's send queue"
    candles_resume = store["resume"][0]
    assert candles_resume["since"] == {"candles:total:1d": 9}
    assert candles_resume["history"] == chart_group["resumeHistory"] > 0
    assert max(store["frame_sizes"]) < 4096
    assert store["resumed_channels"] == 302
    assert store["after_epoch"] == {"alerts": ["b"], "seq": 2, "epoch_before": None}
    alerts_resume = next(r for r in store["resume"] if r["channels"] == ["alerts:*"])
    assert alerts_resume["since"] == {"alerts:rsi_cross": {"seq": 2, "epoch": "0-0-9"}}
    assert store["worst_first"] == ["GPU", "RENDER", "FET", "X"]


STORE_SCRIPT = """() => {
  const S = new window.cpStore.Store();
  const c = (seq, t, close, type = "update") => ({type, channel: "candles:total:1d", seq,
      data: {open_time: t, open: 1, high: 30, low: 1, close, closed: false, ts: seq}});
  let id = 0;
  const first = S.subscribeRequests(() => ++id);
  S.apply(c(1, 1000, 10, "history"));
  S.apply(c(2, 1000, 11, "history"));
  S.apply(c(3, 2000, 21, "snapshot"));
  S.apply(c(4, 2000, 22));
  S.apply(c(4, 2000, 99));                 // a replayed seq: dropped
  const points = S.series().map(p => p.t);
  const closes = S.series().map(p => p.close);
  const duplicates = S.duplicates;
  const outcome = S.apply(Object.assign(c(9, 3000, 33, "snapshot"), {recovered: false}));
  const refill = outcome === "refill" ? S.refillRequest("candles:total:1d", () => 99) : null;
  const after_reset = S.series().map(p => p.t);
  for (let i = 0; i < 300; i++) {
    S.apply({type: "snapshot", channel: "liquidations:24h:asset:COIN" + i, seq: 100 + i,
             data: {window: "24h", scope: "asset:COIN" + i, total_usd: i, long_usd: i, short_usd: 0}});
  }
  const epoch_before = S.apply({type: "update", channel: "alerts:rsi_cross", seq: 7, prev: 6, epoch: "0-0-1",
                                data: {id: "a", kind: "rsi_cross", ts: 1}});
  S.apply({type: "update", channel: "alerts:rsi_cross", seq: 2, prev: null, epoch: "0-0-9",
           data: {id: "b", kind: "rsi_cross", ts: 2}});  // a reset stream: seq 2 is new, not a duplicate
  const after_epoch = {alerts: Object.keys(S.alerts), seq: S.seq["alerts:rsi_cross"], epoch_before};
  const resume = S.subscribeRequests(() => ++id);
  const frame_sizes = resume.map(r => JSON.stringify(r).length);
  const resumed = new Set();
  resume.forEach(r => Object.keys(r.since || {}).forEach(ch => resumed.add(ch)));
  const worst_first = window.cpStore.membersWorstFirst({members: [
    {asset: "FET", change_24h_pct: -10.4}, {asset: "X", change_24h_pct: null},
    {asset: "GPU", change_24h_pct: -27.3}, {asset: "RENDER", change_24h_pct: -14.6}]}).map(m => m.asset);
  return {points, closes, duplicates, after_reset, refill, first_requests: first, frame_sizes, resume,
          groups: window.cpStore.GROUPS,
          resumed_channels: resumed.size, worst_first, after_epoch};
}"""


async def chart_times(page: Page) -> list[int]:
    """open_time of every candle drawn on the chart, in drawing order."""
    times: list[int] = await page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-testid=cap-chart] g.c')).map(g => Number(g.dataset.t))")
    return times


async def assert_headline(page: Page, url: str, required: list[str] = HEADLINE,
                          timeout: float = 20) -> dict[str, dict[str, Any]]:
    """The page shows the gateway's current headline values (those of ``required`` at least), formatted.
    Both are read again until they agree: on a replaying stack the figures keep moving."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        values = await gateway_values(url, HEADLINE, required)
        expected = expected_headline(values)
        assert len(expected) >= 2 * len(required)
        shown = {testid: await page.get_by_test_id(testid).inner_text() for testid in expected}
        if shown == expected:
            return values
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"page shows {shown}, gateway sends {expected}")
        await asyncio.sleep(0.3)


async def restart_gateway(page: Page, gateway: ServiceProcess, start: Callable[[], ServiceProcess],
                          port: int, while_down: Callable[[], Awaitable[None]] | None = None) -> None:
    """kill -9 the gateway: the page says reconnecting; start a new one: the page is live again."""
    status = page.get_by_test_id("conn-status")
    gateway.stop(signal.SIGKILL)
    await expect(status).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    if while_down is not None:
        await while_down()
    await asyncio.to_thread(wait_ready, port, start())
    await expect(status).to_have_attribute("data-state", "live", timeout=30_000)


async def assert_unique_points(page: Page) -> list[int]:
    drawn = await chart_times(page)
    assert len(drawn) == len(set(drawn))
    assert await page.evaluate("() => window.cryptopulse.store.series().length") == len(drawn)
    return drawn


async def assert_ai_members_worst_first(page: Page, ai: dict[str, Any]) -> None:
    await page.get_by_test_id("expand-ai").click()
    rows = page.locator("tr.member[data-sector=ai]")
    await expect(rows).to_have_count(len(ai["members"]))
    shown = await rows.evaluate_all("rows => rows.map(r => r.dataset.testid.slice('member-row-'.length))")
    expected = [m["asset"] for m in sorted(ai["members"], key=lambda m: m["change_24h_pct"])]
    assert shown == expected
    for member in ai["members"]:
        await expect(page.get_by_test_id(f"member-change-{member['asset']}")).to_have_text(
            pct(member["change_24h_pct"]))


def open_times(records: list[feed.Record]) -> set[int]:
    return {value["open_time"] for topic, _, value in records if topic == feed.topics.CANDLES.name}


def test_dashboard_follows_gateway_through_restart(broker, services) -> None:  # type: ignore[no-untyped-def]
    """Values on the page are the gateway's; a killed gateway shows 'reconnecting', the restarted one
    resumes the page (what was produced meanwhile arrives, later updates too) with no duplicate point."""
    initial = feed.initial_records()
    asyncio.run(produce(broker.bootstrap, initial))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    url = f"ws://127.0.0.1:{port}/ws"
    first = services("gateway", env=env, name="gateway1")
    wait_ready(port, first)
    ARTIFACTS.mkdir(exist_ok=True)

    async def run() -> None:
        async with chromium() as browser:
            page = await browser.new_page(viewport=LAPTOP)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live", timeout=15_000)
            values = await assert_headline(page, url)
            await assert_ai_members_worst_first(page, values["sector:ai"])
            days = open_times(initial)
            await expect(page.get_by_test_id("cap-chart")).to_have_attribute("data-points", str(len(days)))
            assert sorted(await chart_times(page)) == sorted(days)
            await expect(page.get_by_test_id("alert")).to_have_count(
                sum(1 for topic, _, _ in initial if topic == feed.topics.ALERTS.name))
            await expect(page.get_by_test_id("liq-largest").locator("li")).not_to_have_count(0)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-laptop.png"), full_page=True)

            later = feed.next_day_records()

            async def produce_later() -> None:
                await produce(broker.bootstrap, later)

            await restart_gateway(page, first, lambda: services("gateway", env=env, name="gateway2"), port,
                                  produce_later)
            await assert_headline(page, url)
            days |= open_times(later)
            await expect(page.get_by_test_id("cap-chart")).to_have_attribute("data-points", str(len(days)))
            # The day that closed while the gateway was down is drawn closed, at its final value
            # (a resumed state channel is conflated to its latest record: the page asks for history too).
            closed = next(v for t, _, v in later if t == feed.topics.CANDLES.name and v["closed"])
            candle = page.locator(f'[data-testid=cap-chart] g.c[data-t="{closed["open_time"]}"]')
            await expect(candle).not_to_have_class(re.compile(r"\bforming\b"))
            shown = await page.evaluate("t => window.cryptopulse.store.candles[t]", closed["open_time"])
            assert shown["closed"] is True and shown["close"] == closed["close"]

            await produce(broker.bootstrap, feed.sector_records(total_cap=3.452e12, ts=feed.NOW + 3 * feed.HOUR_MS))
            await expect(page.get_by_test_id("total-cap")).to_have_text(usd(3.452e12), timeout=15_000)
            await assert_headline(page, url)
            assert sorted(await assert_unique_points(page)) == sorted(days)
            assert await page.evaluate("() => window.cryptopulse.conn.reconnects") >= 1

            await page.set_viewport_size(PHONE)
            await page.wait_for_timeout(300)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
            assert errors == []

    asyncio.run(run())



def stack_source() -> tuple[str, list[str]]:
    """The built-in scenario (at low density) and every headline channel once it exists, else the
    bundled Binance recording (liquidations only: it holds too few assets for sector caps)."""
    if importlib.util.find_spec("services.scenario.source") is not None:
        return "scenario", HEADLINE
    return f"replay:{SAMPLE}", ["liquidations:24h:all"]


def test_dashboard_on_replaying_stack(broker, services) -> None:  # type: ignore[no-untyped-def]
    """ingest + process + gateway as processes on the embedded broker: the page shows what the gateway
    serves, before and after the gateway is killed and restarted."""
    source, required = stack_source()
    env = gateway_env(broker.bootstrap)
    env["CRYPTOPULSE_KAFKA_BOOTSTRAP"] = ""  # the test broker as "the embedded broker": its client settings
    env.update(CRYPTOPULSE_BROKER_PORT=broker.bootstrap.rsplit(":", 1)[1],
               CRYPTOPULSE_INGESTOR_METRICS_PORT=str(free_port()),
               CRYPTOPULSE_PROCESSOR_METRICS_PORT=str(free_port()), CRYPTOPULSE_SCENARIO_DENSITY="0.01")
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    url = f"ws://127.0.0.1:{port}/ws"
    if source.startswith("replay:"):
        assets = services("assets", ["load"], env=env)
        assert assets.process.wait(60) == 0, assets.output()
    services("process", env=env)
    gateway = services("gateway", env=env, name="gateway1")
    services("ingest", ["--source", source, "--speed", "max"], env=env)
    wait_ready(port, gateway)
    # The processor's first totals take 10-20 s on an idle machine (Faust start, group join), more when busy.
    asyncio.run(gateway_values(url, HEADLINE, required, timeout=90))
    ARTIFACTS.mkdir(exist_ok=True)

    async def run() -> None:
        async with chromium() as browser:
            page = await browser.new_page(viewport=LAPTOP)
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live", timeout=15_000)
            await assert_headline(page, url, required)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-stack-laptop.png"), full_page=True)
            before = await assert_unique_points(page)
            await restart_gateway(page, gateway, lambda: services("gateway", env=env, name="gateway2"), port)
            await assert_headline(page, url, required)
            after = await assert_unique_points(page)
            assert set(before) <= set(after)
            await page.set_viewport_size(PHONE)
            await page.wait_for_timeout(300)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-stack-phone.png"), full_page=True)

    asyncio.run(run())


def test_unrecoverable_resume_replaces_state(broker, services) -> None:  # type: ignore[no-untyped-def]
    """A restarted gateway that no longer retains what the page missed answers recovered:false: the
    page replaces that channel's state (the alerts of that kind become the gateway's retained ones)."""
    asyncio.run(produce(broker.bootstrap, feed.initial_records()))
    env = gateway_env(broker.bootstrap)
    port = int(env["CRYPTOPULSE_GATEWAY_PORT"])
    url = f"ws://127.0.0.1:{port}/ws"
    first = services("gateway", env=env, name="gateway1")
    wait_ready(port, first)
    missed = [feed.alert("rsi_cross", "total:1d", f"RSI(14) check {n}", feed.NOW + n * 60_000, rsi14=40.0 + n)
              for n in range(1, 5)]
    retained = 2

    async def run() -> None:
        async with chromium() as browser:
            page = await browser.new_page(viewport=LAPTOP)
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "live", timeout=15_000)
            await assert_headline(page, url)
            feed_items = page.get_by_test_id("alerts-feed").locator("li.k-rsi_cross .msg")
            await expect(feed_items).to_have_count(1)
            others = await page.locator("li.alert:not(.k-rsi_cross)").count()

            async def produce_missed() -> None:
                await produce(broker.bootstrap, missed)

            await restart_gateway(page, first, lambda: services(
                "gateway", env={**env, "CRYPTOPULSE_GATEWAY_HISTORY_SIZE": str(retained)}, name="gateway2"),
                port, produce_missed)
            expected = [value["message"] for _, _, value in reversed(missed[-retained:])]
            await expect(feed_items).to_have_text(expected, timeout=15_000)
            await expect(page.locator("li.alert:not(.k-rsi_cross)")).to_have_count(others)
            assert await page.evaluate("() => window.cryptopulse.store.resets") >= 1
            await assert_headline(page, url)

    asyncio.run(run())
