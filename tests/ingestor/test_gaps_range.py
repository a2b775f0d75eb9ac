"""Trade ids outside the int64 range are not a venue sequence: no gap detection, no crash."""

from services.common.events import Trade
from services.ingestor.gaps import GapDetector


def trade(trade_id: str) -> Trade:
    return Trade(exchange="okx", symbol="BTC-USDT-SWAP", instrument="BTC-USDT-PERP", base="BTC", quote="USDT",
                 market="perp", side="buy", price=1.0, size=1.0, notional_usd=1.0, trade_id=trade_id, ts=1, ts_recv=1)


def test_ids_beyond_int64_are_not_sequences() -> None:
    detector = GapDetector()
    assert detector.observe(trade("5")) is None
    assert detector.observe(trade("9" * 40)) is None
    gap = detector.observe(trade("8"))
    assert gap is not None and gap.missing == 2
