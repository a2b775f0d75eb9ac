"""The pure comparison rules of ``cryptopulse report``."""

from __future__ import annotations

from services.scenario.figures import (
    Figure,
    evaluate,
    evaluate_all,
    expected_signals,
    human,
    load_figures,
    psychological_support,
    worst_large_cap,
)


def test_relative_absolute_bounds_and_strings() -> None:
    rel = Figure("x", "", value=100.0, tolerance=0.01)
    assert evaluate(rel, 100.9).ok and not evaluate(rel, 101.2).ok
    assert evaluate(rel, 101.2).why == "off by 1.20%"
    absolute = Figure("y", "", value=-6.4, abs=0.3)
    assert evaluate(absolute, -6.65).ok and not evaluate(absolute, -6.75).ok
    assert evaluate(Figure("z", "", max=-25.0), -27.5).ok
    assert not evaluate(Figure("z", "", max=-25.0), -24.0).ok
    assert evaluate(Figure("m", "", min=38.0), 42.0).ok
    assert not evaluate(Figure("m", "", min=38.0), 37.9).ok
    assert evaluate(Figure("s", "", value="RENDER"), "RENDER").ok
    assert not evaluate(Figure("s", "", value="RENDER"), "FET").ok
    assert not evaluate(rel, None).ok


def test_article_file_and_targets() -> None:
    figures = {f.id: f for f in load_figures()}
    assert len(figures) == 23
    assert figures["total_cap"].target() == "$3.38T ±1%"
    assert figures["gpu_change_24h"].target() == "<= -25"
    assert len(expected_signals()) == 5
    verdicts = evaluate_all({"total_cap": 3.381e12})
    assert [v.figure.id for v in verdicts if v.ok] == ["total_cap"]


def test_support_worst_member_and_formatting() -> None:
    assert psychological_support(3.38e12) == 3.2e12
    assert psychological_support(3.4e12) == 3.2e12
    members = {"RENDER": (4.4e9, -14.6), "GPU": (0.1e9, -27.5), "NEAR": (7e9, -11.4), "X": (None, -50.0)}
    assert worst_large_cap(members) == "RENDER"
    assert human(3.38e12) == "$3.38T" and human(853e6) == "$853.0M" and human(-6.4) == "-6.4"


DAY = 86_400_000
D0120, D0124, D0127 = 1_737_331_200_000, 1_737_676_800_000, 1_737_936_000_000


def _records() -> dict[str, list[dict[str, object]]]:
    members = [{"asset": "RENDER", "cap_usd": 4.4e9, "change_24h_pct": -14.6},
               {"asset": "NEAR", "cap_usd": 7.6e9, "change_24h_pct": -11.4},
               {"asset": "GPU", "cap_usd": 0.13e9, "change_24h_pct": -27.5}]
    return {
        "sector:total": [{"cap_usd": 3.39e12, "change_24h_pct": -6.3}],
        "sector:ai": [{"cap_usd": 42.5e9, "cap_24h_ago_usd": 47.54e9, "change_24h_pct": -10.6,
                       "volume_24h_usd": 3.41e9, "volume_change_24h_pct": 42.0, "members": members}],
        "asset:RENDER": [{"change_24h_pct": -14.6}], "asset:NEAR": [{"change_24h_pct": -11.4}],
        "asset:GRT": [{"change_24h_pct": -11.41}], "asset:FET": [{"change_24h_pct": -10.41}],
        "asset:GPU": [{"change_24h_pct": -27.5}],
        "liquidations:24h:all": [{"total_usd": 853e6, "long_usd": 794e6}],
        "liquidations:24h:asset:BTC": [{"long_usd": 247.95e6}],
        "indicators:total:1d": [
            {"open_time": D0124, "closed": False, "rsi14": 61.0},
            {"open_time": D0124, "closed": True, "rsi14": 57.2},
            {"open_time": D0124 + DAY, "closed": True, "rsi14": 58.0},
            {"open_time": D0127, "closed": False, "rsi14": 43.1, "sma50": 3.37e12, "sma100": 3.1e12},
        ],
        "candles:total:1d": [{"open_time": D0120, "high": 3.694e12}, {"open_time": D0127, "high": 3.62e12}],
    }


def test_live_values_from_gateway_records_and_signals() -> None:
    from services.scenario.figures import check_signals, evaluate_live, live_values

    values = live_values(_records())
    assert values["rsi14_total_2025-01-24"] == 57.2          # the closed 01-24 record, not a provisional one
    assert values["rsi14_total_2025-01-27"] == 43.1
    assert (values["local_high"], values["local_high_date"]) == (3.694e12, "2025-01-20")
    assert values["worst_ai_large_cap"] == "RENDER"
    assert values["support_psychological"] == 3.2e12
    assert [v.figure.id for v in evaluate_live(values) if not v.ok] == []
    alerts = [{"kind": "sector_drawdown", "subject": "ai", "id": "sector_drawdown:ai:1"}]
    signals = check_signals(values, alerts)
    assert all(s.ok for s in signals)
    assert signals[1].alert == "sector_drawdown:ai:1" and signals[0].alert is None


def test_missing_or_misdated_values_fail() -> None:
    from services.scenario.figures import check_signals, evaluate_live, live_values

    records = _records()
    records["candles:total:1d"] = [{"open_time": D0124, "high": 3.69e12}]
    del records["asset:GPU"]
    values = live_values(records)
    failed = {v.figure.id: v.why for v in evaluate_live(values) if not v.ok}
    assert failed == {"gpu_change_24h": "no live value", "local_high": "reached 2025-01-24"}
    assert not check_signals(live_values({}), [])[0].ok
