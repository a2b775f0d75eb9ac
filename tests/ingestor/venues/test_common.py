"""The shared checks of venues/common.py, and the inlined contract conversion against base.Instrument."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    UNKNOWN_INSTRUMENT,
    FrameError,
    Instrument,
    Parsed,
)
from services.ingestor.venues.common import Adapter, epoch_ms, iso_ms, nonzero, positive

KINDS = [
    Instrument("t", "LIN", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.01),
    Instrument("t", "INV", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 100.0),
    Instrument("t", "QUA", "ETH-USD-PERP", "ETH", "USD", "perp", "quanto", 0.1),
    Instrument("t", "SPOT", "BTC-USD", "BTC", "USD", "spot", "spot", 1.0),
    Instrument("t", "K", "PEPE-USDT-PERP", "PEPE", "USDT", "perp", "linear", 1000.0, 1000.0),
]


class _Probe(Adapter):
    """An adapter with no frames of its own: exposes the shared conversion path."""

    id = "t"

    def events(self, message: Any, ts_recv: int, out: Parsed) -> None:
        return None


ADAPTER = _Probe({inst.symbol: inst for inst in KINDS})
ADAPTER.parse("{}", 0)     # the first frame builds the instrument specs


def _amounts(symbol: str, price: object, size: object) -> tuple[float, float, float]:
    _, p, base, notional = ADAPTER._amounts(symbol, price, size)
    return p, base, notional


@settings(max_examples=300, derandomize=True)
@given(inst=st.sampled_from(KINDS), price=st.floats(1e-6, 1e7), size=st.floats(1e-6, 1e7), as_text=st.booleans())
def test_fast_conversion_agrees_with_instrument_methods(inst: Instrument, price: float, size: float,
                                                       as_text: bool) -> None:
    p, base, notional = _amounts(inst.symbol, repr(price) if as_text else price, repr(size) if as_text else size)
    unit = inst.unit_price(price)
    assert p == unit
    assert base == inst.base_size(size, unit)
    assert notional == inst.notional_usd(size, unit)


@pytest.mark.parametrize(("price", "size", "reason"), [
    ("nan", "1", BAD_VALUE), ("1", "inf", BAD_VALUE), ("0", "1", BAD_VALUE), ("1", "-2", BAD_VALUE),
    (True, "1", BAD_FIELD), ("1", None, BAD_FIELD), ("abc", "1", BAD_FIELD), ([1], "1", BAD_FIELD),
    ("1e-320", "1e-320", BAD_VALUE),     # positive inputs whose base size underflows to 0
])
def test_fast_conversion_rejects(price: object, size: object, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        _amounts("LIN", price, size)
    assert err.value.reason_class == reason


def test_unknown_and_mistyped_symbols() -> None:
    for symbol, reason in (("NOPE", UNKNOWN_INSTRUMENT), (None, BAD_FIELD), (["LIN"], BAD_FIELD)):
        with pytest.raises(FrameError) as err:
            _amounts(symbol, "1", "1")  # type: ignore[arg-type]
        assert err.value.reason_class == reason


def test_number_checks() -> None:
    assert positive("0.001", "v") == 0.001 and positive(7, "v") == 7.0
    assert nonzero("-12", "size") == -12.0
    for value in ("NaN", "-Infinity", "0", 0.0, -1):
        with pytest.raises(FrameError) as err:
            positive(value, "v")
        assert err.value.reason_class == BAD_VALUE
    with pytest.raises(FrameError) as err:
        nonzero("0", "size")
    assert err.value.reason_class == BAD_VALUE


def test_timestamps() -> None:
    assert epoch_ms(1737972000123, "T") == epoch_ms("1737972000123", "T") == 1737972000123
    assert epoch_ms("1737972000123.4578", "T") == epoch_ms(1737972000123.9, "T") == 1737972000123
    for bad in (-1, True, None, "x", "-5", 2**60, math.inf):
        with pytest.raises(FrameError):
            epoch_ms(bad, "T")
    assert iso_ms("2025-01-27T10:00:00.123456Z", "t") == 1737972000123
    assert iso_ms("2025-01-27T10:00:00Z", "t") == 1737972000000
    assert iso_ms("2025-01-27T11:00:00.5+01:00", "t") == 1737972000500
    for bad in ("2025-01-27T10:00:61Z", "yesterday", "", 1737972000):
        with pytest.raises(FrameError):
            iso_ms(bad, "t")
