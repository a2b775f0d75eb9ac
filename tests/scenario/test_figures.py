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
