"""Processor settings (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import at_least, register, setting


@register
@dataclass(frozen=True)
class ProcessorSettings:
    processor_metrics_port: int = setting(9302, "Processor Prometheus /metrics port.")
    processor_app_id: str = setting("cryptopulse-processor", "Faust app id (consumer group, changelog prefix).")
    processor_emit_interval: float = setting(
        0.2, "Conflation: at most one derived update per key per this many seconds (only when changed; forming "
             "candles: processor_candle_emit_interval). "
             "It is the tail of the update latency: 0.2 s gives p99 226 ms at a 1000x replay, 1 s 470 ms.",
        check=at_least(0))
    processor_candle_emit_interval: float = setting(
        1.0, "Conflation of forming candles and their provisional indicators: at most one update per series and "
             "interval per this many seconds (closed candles are never conflated). Longer than the emit interval: a "
             "chart candle needs no more, and a candle channel's retained history (gateway_history_size records) "
             "then reaches further back (at 0.2 s a long replay pushed the week's closed daily candles out of it).",
        check=at_least(0))
    processor_batch_size: int = setting(
        5000, "Trade bars taken from the stream per batch at most.", check=at_least(1))
    processor_batch_within: float = setting(
        0.05, "Seconds to wait for a batch of trade bars to fill.", check=at_least(0))
    processor_datadir: str = setting(
        "", "Faust data directory. Empty: a fresh temporary directory per worker (state lives in changelogs).")
    processor_web_port: int = setting(0, "Faust web server port; 0 turns the web server off.")
    processor_fetch_max_wait_ms: int = setting(
        20, "Longest a fetch waits for data (Faust hard-codes 1500 ms, which the embedded broker waits in full).",
        check=at_least(0))
    processor_close_lateness_ms: int = setting(
        5000, "Cap-series candles (total, ai, ...) close when the source watermark passes the interval end by this much event time.",
        check=at_least(0))
    processor_idle_source_seconds: float = setting(
        10.0, "A trade-bars partition that sent nothing for this long (wall time, while others sent) stops holding the watermark back.",
        check=at_least(0.1))

    # Plausibility bounds (services/processor/validate.py): an input outside them is a dead letter.
    processor_max_clock_skew_ms: int = setting(
        60_000, "A trade bar or liquidation whose ts_recv is later than the wall clock by more than this is a dead letter.",
        check=at_least(0))
    processor_max_ts_ahead_ms: int = setting(
        60_000, "A trade bar or liquidation whose event ts is later than its ts_recv by more than this is a dead letter.",
        check=at_least(0))
    processor_max_notional_usd: float = setting(
        1e11, "Largest plausible notional of one trade bar or one liquidation, USD (above: dead letter).",
        check=at_least(1))
    processor_max_price_usd: float = setting(
        1e9, "Largest plausible price, USD (above, or not > 0: dead letter).", check=at_least(1e-09))

    # Alerts (services/processor/signals.py). Candle alerts fire on closed candles only, on the edge.
    alert_intervals: tuple[str, ...] = setting(
        ("1h", "1d"), "Candle intervals of sector caps (total, ai, ...) whose closes raise SMA/RSI/local-extreme/round-level alerts.")
    alert_asset_intervals: tuple[str, ...] = setting(
        ("1d",), "Candle intervals of asset prices (BTC, ...) whose closes raise those alerts.")
    alert_sma_hysteresis_pct: float = setting(
        0.1, "SMA cross: the close must pass the SMA by this % to flip sides (no flicker).")
    alert_sma_test_pct: float = setting(
        1.0, "SMA 'testing': the close is above the SMA by at most this % (alerted on entry).")
    alert_sma_test_periods: tuple[str, ...] = setting(
        ("50",), "SMA periods (of 20/50/100/200) whose 'testing from above' is alerted.")
    alert_rsi_hysteresis: float = setting(
        0.5, "RSI cross of 30/50/70: RSI must pass the level by this many points to flip sides.")
    alert_local_lookback: int = setting(
        20, "Local high/low: the extreme candle beats the previous N closed candles' highs/lows.")
    alert_local_confirm: int = setting(
        2, "Local high/low: confirmed once this many later closed candles stay below/above it.")
    alert_round_step_mult: float = setting(
        2.0, "Round-number levels: step = this x 10^(digits-1), e.g. 0.2T for a cap in trillions.")
    alert_round_hysteresis: float = setting(
        0.1, "Round-number levels change when the close leaves the current pair by this fraction of a step.")
    alert_volume_surge_pct: float = setting(
        30.0, "Volume surge: 24 h volume up at least this % vs the previous 24 h.")
    alert_volume_hysteresis_pct: float = setting(
        5.0, "Volume surge re-arms when the 24 h volume change falls this many points below the threshold.")
    alert_volume_min_usd: float = setting(
        1_000_000.0, "Volume surge: both 24 h volumes must be at least this many USD.")
    alert_asset_volume_surge: bool = setting(True, "Raise volume-surge alerts per asset too (not only sectors).")
    alert_drawdown_pct: float = setting(10.0, "Sector drawdown: 24 h change at or below minus this %.")
    alert_drawdown_hysteresis_pct: float = setting(
        2.0, "Sector drawdown re-arms when the 24 h change recovers this many points above the threshold.")
    alert_liq_dominance: float = setting(
        0.9, "Liquidation cascade: one side's share of the 24 h total at or above this, price moving that way.")
    alert_liq_burst_ratio: float = setting(
        4.0, "Liquidation cascade: last hour's side notional at least this x its trailing 23 h hourly rate.")
    alert_liq_min_usd: float = setting(
        1_000_000.0, "Liquidation cascade: the side's notional in the window must be at least this many USD.")
