"""Instrument refresh parsers of the Gate, Deribit, BitMEX and Coinbase adapters, on response
shapes of their public REST endpoints (trimmed to the fields they read plus a few others)."""

from __future__ import annotations

from services.ingestor.venues.base import Instrument
from services.ingestor.venues.bitmex import Bitmex
from services.ingestor.venues.coinbase import Coinbase
from services.ingestor.venues.deribit import Deribit
from services.ingestor.venues.gate import Gate


def _by_symbol(instruments: list[Instrument]) -> dict[str, Instrument]:
    return {inst.symbol: inst for inst in instruments}


def test_gate_usdt_contracts() -> None:
    body = [{"name": "BTC_USDT", "type": "direct", "quanto_multiplier": "0.0001", "leverage_max": "125",
             "mark_price": "101000.1", "in_delisting": False},
            {"name": "OLD_USDT", "type": "direct", "quanto_multiplier": "10", "in_delisting": True}]
    assert _by_symbol(Gate.parse_rest_instruments(body)) == {
        "BTC_USDT": Instrument("gate", "BTC_USDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.0001)}
    assert Gate.parse_rest_instruments({"label": "SERVER_ERROR"}) == []


def test_deribit_futures_and_perpetuals() -> None:
    body = {"jsonrpc": "2.0", "result": [
        {"instrument_name": "BTC-PERPETUAL", "kind": "future", "settlement_period": "perpetual",
         "base_currency": "BTC", "counter_currency": "USD", "quote_currency": "USD", "instrument_type": "reversed",
         "contract_size": 10.0, "expiration_timestamp": 32503708800000, "is_active": True},
        {"instrument_name": "BTC-28MAR25", "kind": "future", "settlement_period": "quarter",
         "base_currency": "BTC", "counter_currency": "USD", "instrument_type": "reversed", "contract_size": 10.0,
         "expiration_timestamp": 1743148800000, "is_active": True},
        {"instrument_name": "ETH_USDC-PERPETUAL", "kind": "future", "settlement_period": "perpetual",
         "base_currency": "ETH", "counter_currency": "USDC", "instrument_type": "linear", "contract_size": 0.01,
         "expiration_timestamp": 32503708800000, "is_active": True}]}
    assert _by_symbol(Deribit.parse_rest_instruments(body)) == {
        "BTC-PERPETUAL": Instrument("deribit", "BTC-PERPETUAL", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 1.0),
        "BTC-28MAR25": Instrument("deribit", "BTC-28MAR25", "BTC-USD-250328", "BTC", "USD", "future", "inverse", 1.0),
        "ETH_USDC-PERPETUAL": Instrument("deribit", "ETH_USDC-PERPETUAL", "ETH-USDC-PERP", "ETH", "USDC", "perp",
                                         "linear", 1.0)}


def test_bitmex_inverse_linear_quanto_and_futures() -> None:
    body = [
        {"symbol": "XBTUSD", "rootSymbol": "XBT", "typ": "FFWCSX", "state": "Open", "quoteCurrency": "USD",
         "isInverse": True, "isQuanto": False, "multiplier": -100000000, "underlyingToPositionMultiplier": None,
         "markPrice": 100000.0, "lastPrice": 100010.0},
        {"symbol": "XBTUSDT", "rootSymbol": "XBT", "typ": "FFWCSX", "state": "Open", "quoteCurrency": "USDT",
         "isInverse": False, "isQuanto": False, "multiplier": 1, "underlyingToPositionMultiplier": 1000000},
        {"symbol": "ETHUSD", "rootSymbol": "ETH", "typ": "FFWCSX", "state": "Open", "quoteCurrency": "USD",
         "isInverse": False, "isQuanto": True, "multiplier": 100, "underlyingToPositionMultiplier": None},
        {"symbol": "XBTH25", "rootSymbol": "XBT", "typ": "FFCCSX", "state": "Open", "quoteCurrency": "USD",
         "isInverse": True, "isQuanto": False, "multiplier": -100000000, "expiry": "2025-03-28T12:00:00.000Z"},
        {"symbol": ".BXBT", "rootSymbol": "XBT", "typ": "MRCXXX", "state": "Unlisted", "quoteCurrency": "USD"},
    ]
    got = _by_symbol(Bitmex.parse_rest_instruments(body))
    assert got["XBTUSD"] == Instrument("bitmex", "XBTUSD", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 1.0)
    assert got["XBTUSDT"] == Instrument("bitmex", "XBTUSDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 1e-6)
    # quanto ETHUSD: 100 satoshi per USD of ETH price = 1e-6 XBT x ETH price; in ETH at XBTUSD 100,000: 0.1
    assert got["ETHUSD"].kind == "quanto" and abs(got["ETHUSD"].contract_size - 0.1) < 1e-12
    assert got["XBTH25"] == Instrument("bitmex", "XBTH25", "BTC-USD-250328", "BTC", "USD", "future", "inverse", 1.0)
    assert ".BXBT" not in got


def test_coinbase_products() -> None:
    body = [{"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", "status": "online",
             "trading_disabled": False, "base_increment": "0.00000001"},
            {"id": "XYZ-USD", "base_currency": "XYZ", "quote_currency": "USD", "status": "delisted",
             "trading_disabled": True}]
    assert _by_symbol(Coinbase.parse_rest_instruments(body)) == {
        "BTC-USD": Instrument("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD", "spot", "spot", 1.0)}
