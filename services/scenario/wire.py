"""Exchange frames in each venue's exact websocket format (pure).

- Binance USD-M combined stream: ``{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade",...}}`` and
  ``{"stream":"!forceOrder@arr","data":{"e":"forceOrder","E":..,"o":{...}}}`` (``S`` = order side:
  SELL closes a long).
- Bybit v5 public linear: ``publicTrade.{symbol}`` (``S`` = taker side) and ``allLiquidation.{symbol}``
  (``S`` = position side: Buy = a long was liquidated).
- OKX v5 public: ``trades`` (``sz`` in contracts for swaps) and ``liquidation-orders``
  (``details[].posSide`` + ``side``, ``sz`` in contracts, ``bkPx`` the bankruptcy price).

Prices and sizes are decimal strings in the venue's units: price per ``price_scale`` base units
(Binance 1000PEPEUSDT), size in contracts of ``contract_size`` base units (OKX ``ctVal``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson


class Instrument(Protocol):
    """What the scenario needs of a venue's instrument (the ingestor's table hands them in)."""

    @property
    def symbol(self) -> str: ...
    @property
    def base(self) -> str: ...
    @property
    def quote(self) -> str: ...
    @property
    def market(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def price_scale(self) -> float: ...
    @property
    def contract_size(self) -> float: ...
    def unit_price(self, venue_price: float) -> float: ...
    def notional_usd(self, venue_size: float, price: float) -> float: ...


InstrumentTables = Callable[[str], Mapping[str, Instrument]]
"""The instrument table of a venue id (``services.ingestor.instruments.load_instruments``)."""

BINANCE = "binance-usdm"
BYBIT = "bybit"
OKX = "okx"
VENUES = (BINANCE, BYBIT, OKX)


@dataclass(frozen=True, slots=True)
class Market:
    """One asset's perpetual on one venue, with the decimal places its frames use."""

    venue: str
    inst: Instrument
    price_decimals: int
    size_decimals: int

    def venue_price(self, price: float) -> str:
        return f"{price * self.inst.price_scale:.{self.price_decimals}f}"

    def venue_size(self, notional_usd: float, price: float) -> str:
        """The size field for about ``notional_usd`` at ``price`` (at least one size step)."""
        units = notional_usd / (price * self.inst.contract_size)
        step = 10.0 ** -self.size_decimals
        return f"{max(units, step):.{self.size_decimals}f}"

    def notional(self, venue_price: str, venue_size: str) -> float:
        """What the venue adapter computes for these strings (the canonical ``notional_usd``)."""
        return self.inst.notional_usd(float(venue_size), self.inst.unit_price(float(venue_price)))


def find_market(instruments: InstrumentTables, venue: str, asset: str, reference_price: float) -> Market:
    """The asset's USDT-margined linear perpetual on ``venue``."""
    for inst in instruments(venue).values():
        if inst.base == asset and inst.quote == "USDT" and inst.market == "perp" and inst.kind == "linear":
            venue_price = reference_price * inst.price_scale
            price_decimals = min(10, max(0, 7 - (math.floor(math.log10(venue_price)) + 1)))
            unit_usd = reference_price * inst.contract_size
            size_decimals = min(8, max(0, math.ceil(math.log10(unit_usd)) + 2))
            return Market(venue, inst, price_decimals, size_decimals)
    raise LookupError(f"no USDT linear perpetual for {asset} on {venue}")


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def trade_frame(market: Market, *, trade_id: int, price: str, size: str, taker_buy: bool, ts: int,
                event_ts: int, tick: str, uuid: str, first_id: int) -> str:
    """One trade. ``trade_id`` is the venue's sequential id (Binance ``a``, OKX ``tradeId``);
    ``uuid`` is Bybit's trade id; ``first_id`` Binance's first constituent trade id."""
    symbol = market.inst.symbol
    if market.venue == BINANCE:
        return _dumps({"stream": f"{symbol.lower()}@aggTrade", "data": {
            "e": "aggTrade", "E": event_ts, "a": trade_id, "s": symbol, "p": price, "q": size,
            "f": first_id, "l": first_id + (trade_id % 3), "T": ts, "m": not taker_buy}})
    if market.venue == BYBIT:
        return _dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": event_ts, "data": [
            {"T": ts, "s": symbol, "S": "Buy" if taker_buy else "Sell", "v": size, "p": price, "L": tick,
             "i": uuid, "BT": False, "seq": trade_id}]})
    return _dumps({"arg": {"channel": "trades", "instId": symbol}, "data": [
        {"instId": symbol, "tradeId": str(trade_id), "px": price, "sz": size,
         "side": "buy" if taker_buy else "sell", "ts": str(ts), "count": "1"}]})


def liquidation_frame(market: Market, *, long: bool, price: str, bankruptcy: str, size: str, ts: int,
                      event_ts: int) -> str:
    """One liquidation of a ``long`` (else short) position, filled at ``price``."""
    symbol = market.inst.symbol
    if market.venue == BINANCE:
        return _dumps({"stream": "!forceOrder@arr", "data": {"e": "forceOrder", "E": event_ts, "o": {
            "s": symbol, "S": "SELL" if long else "BUY", "o": "LIMIT", "f": "IOC", "q": size, "p": bankruptcy,
            "ap": price, "X": "FILLED", "l": size, "z": size, "T": ts}}})
    if market.venue == BYBIT:
        return _dumps({"topic": f"allLiquidation.{symbol}", "type": "snapshot", "ts": event_ts, "data": [
            {"T": ts, "s": symbol, "S": "Buy" if long else "Sell", "v": size, "p": price}]})
    family = symbol.removesuffix("-SWAP")
    return _dumps({"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [{
        "details": [{"bkLoss": "0", "bkPx": price, "ccy": "", "posSide": "long" if long else "short",
                     "side": "sell" if long else "buy", "sz": size, "ts": str(ts)}],
        "instFamily": family, "instId": symbol, "instType": "SWAP", "uly": family}]})
