"""``cryptopulse report``: the article's table beside the live values of a running stack.

Subscribes through the gateway (with history, to find the 2025-01-24 close's RSI and the local
high's candle), waits until every channel has answered or the stream has been quiet for a moment,
then prints each figure with PASS/FAIL per its tolerance, and the expected signals. Exit code 0
only when everything passes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import aclosing
from typing import Any

import orjson

from services.client import ClientClosed, GatewayClient, GatewayRefused, Record
from services.common import topics
from services.scenario.figures import (
    CANDLES,
    INDICATORS,
    REPORT_CHANNELS,
    SignalCheck,
    Verdict,
    check_signals,
    evaluate_live,
    human,
    live_values,
)

REFERENCE = "reference:assets"     # source and as-of of the circulating supplies in force
ALERT_KINDS: tuple[str, ...] = tuple(json.loads(topics.ALERTS.schema_path.read_text())["properties"]["kind"]["enum"])
# The gateway queues a subscription's history at once and closes a connection whose queue
# overflows (gateway_queue_size, 1000 by default): each group gets its own connection and a history
# that stays below that bound.
GROUPS: tuple[tuple[tuple[str, ...], int], ...] = (
    (tuple(c for c in REPORT_CHANNELS if c not in (INDICATORS, CANDLES) and not c.startswith("alerts:")), 0),
    ((INDICATORS,), 900),
    ((CANDLES,), 900),
    *(((f"alerts:{kind}",), 900) for kind in ALERT_KINDS),
    ((f"{REFERENCE}*",), 0),      # a pattern: a stack without the status is not waited for
)
Records = dict[str, list[dict[str, Any]]]


async def _channel_group(url: str, channels: tuple[str, ...], history: int, timeout: float, quiet: float,
                         token: str | None) -> Records:
    """Records per channel (oldest first) until every named channel answered and ``quiet`` seconds
    passed without a message, or ``timeout``."""
    client = GatewayClient(url, list(channels), token=token, history=history, reconnect=False)
    records: Records = {}
    wanted = {c for c in channels if not c.endswith("*") and not c.startswith("alerts:")}
    deadline = time.monotonic() + timeout
    async with aclosing(client.messages()) as stream:
        try:
            while time.monotonic() < deadline:
                try:
                    message = await asyncio.wait_for(anext(stream), min(quiet, deadline - time.monotonic()))
                except TimeoutError:
                    if wanted <= records.keys():
                        break
                    continue
                if isinstance(message, Record):
                    records.setdefault(message.channel, []).append(message.data)
        except StopAsyncIteration:
            pass
        except ClientClosed as exc:
            if isinstance(exc, GatewayRefused):
                raise
    return records


async def collect(url: str, timeout: float = 20.0, quiet: float = 1.5,
                  token: str | None = None) -> tuple[Records, list[dict[str, Any]]]:
    """Records per channel and every alert seen (history included)."""
    # every group runs to its end, so a refusal seen by all of them is raised once, not also left
    # unretrieved in the others (which asyncio prints as tracebacks at exit)
    groups = await asyncio.gather(*(_channel_group(url, channels, history, timeout, quiet, token)
                                    for channels, history in GROUPS), return_exceptions=True)
    records: Records = {}
    for group in groups:
        if isinstance(group, BaseException):
            raise group
        records.update(group)
    alerts = [a for channel, values in records.items() if channel.startswith("alerts:") for a in values]
    return records, alerts


def _show(value: Any) -> str:
    if isinstance(value, float):
        return human(value) if abs(value) >= 1e6 else f"{value:.2f}"
    return "—" if value is None else str(value)


def reference_line(status: dict[str, Any] | None) -> str:
    if not status:
        return "reference data: as-of unknown (no reference:assets status)"
    return (f"reference data: {status.get('assets', '?')} assets, supplies from {status.get('source', '?')} "
            f"as of {status.get('as_of', '?')}")


def render_table(verdicts: list[Verdict], signals: list[SignalCheck], reference: dict[str, Any] | None = None) -> str:
    lines = [reference_line(reference), "", f"{'figure':26} {'article':>22} {'live':>14}  result"]
    for v in verdicts:
        lines.append(f"{v.figure.id:26} {v.figure.target():>22} {_show(v.live):>14}  "
                     f"{'PASS' if v.ok else 'FAIL'}{'  (' + v.why + ')' if v.why else ''}")
    lines.append("")
    lines.append("expected signals")
    for s in signals:
        alert = f"; alert {s.alert}" if s.alert else ""
        lines.append(f"  {'PASS' if s.ok else 'FAIL'}  {s.text}  [{s.detail}{alert}]")
    passed = sum(v.ok for v in verdicts) + sum(s.ok for s in signals)
    lines.append(f"\n{passed}/{len(verdicts) + len(signals)} pass")
    return "\n".join(lines)


def as_json(verdicts: list[Verdict], signals: list[SignalCheck], values: dict[str, Any],
            reference: dict[str, Any] | None = None) -> str:
    return orjson.dumps({
        "reference": reference,
        "ok": all(v.ok for v in verdicts) and all(s.ok for s in signals),
        "figures": [{"id": v.figure.id, "article": v.figure.value, "target": v.figure.target(), "live": v.live,
                     "pass": v.ok, "why": v.why} for v in verdicts],
        "signals": [{"signal": s.text, "pass": s.ok, "detail": s.detail, "alert": s.alert} for s in signals],
        "local_high_date": values.get("local_high_date"),
    }, option=orjson.OPT_INDENT_2).decode()


async def report(url: str, json_output: bool = False, timeout: float = 20.0, token: str | None = None) -> int:
    try:
        records, alerts = await collect(url, timeout=timeout, token=token)
    except GatewayRefused as exc:
        print(f"cryptopulse report: {exc}", file=sys.stderr)
        return 2
    if not records:
        print(f"cryptopulse report: no data from {url} (is `cryptopulse up` running?)")
        return 2
    values = live_values(records)
    verdicts = evaluate_live(values)
    signals = check_signals(values, alerts)
    statuses = records.get(REFERENCE) or []
    reference = statuses[-1] if statuses else None
    print(as_json(verdicts, signals, values, reference) if json_output
          else render_table(verdicts, signals, reference))
    return 0 if all(v.ok for v in verdicts) and all(s.ok for s in signals) else 1
