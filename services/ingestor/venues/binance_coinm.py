"""Binance COIN-M (coin-margined, inverse) futures: ``<symbol>@aggTrade`` and ``!forceOrder@arr``.

Same combined-stream protocol and frames as Binance USD-M (:mod:`.binance_usdm`: the envelope,
``m`` = "the buyer is the maker", ``forceOrder`` ``S`` = the liquidation order's side, ``ap``/``z``)
on ``wss://dstream.binance.com``. The difference is the size: ``q`` (aggTrade) and ``z``
(forceOrder) are **contracts** of ``contractSize`` USD each (100 for BTCUSD_PERP and BTC
quarterlies, 10 for the other coins), so base units = contracts × contractSize / price and the
USD notional is contracts × contractSize (``Instrument`` kind ``inverse``). Symbols:
``BTCUSD_PERP`` (perpetual), ``BTCUSD_250328`` (quarterly).
"""

from __future__ import annotations

from typing import Any

from services.ingestor.venues.base import ConnectionRules, Heartbeat, Instrument
from services.ingestor.venues.binance_usdm import BinanceUsdm
from services.ingestor.venues.common import make_instrument

VENUE_ID = "binance-coinm"
WS_BASE = "wss://dstream.binance.com"
_CONTRACTS = {"PERPETUAL": "perp", "CURRENT_QUARTER": "future", "NEXT_QUARTER": "future"}


class BinanceCoinm(BinanceUsdm):
    id = VENUE_ID
    rules = ConnectionRules(
        url=WS_BASE,
        heartbeat=Heartbeat(payload=None, interval=180.0),
        max_streams_per_connection=200,
        max_messages_per_second=10.0,
        rotate_after_seconds=23.5 * 3600,      # Binance closes every connection after 24 h
        stale_after_seconds={"trades": 60.0, "liquidations": 3600.0},
    )
    rest_instrument_urls = ("https://dapi.binance.com/dapi/v1/exchangeInfo",)

    @staticmethod
    def parse_rest_instruments(body: Any) -> list[Instrument]:
        """``GET /dapi/v1/exchangeInfo``: ``symbols[]`` with ``contractType``, ``contractStatus``
        (``TRADING``), ``baseAsset``, ``quoteAsset`` (USD), ``contractSize`` (USD per contract) and
        ``deliveryDate``."""
        out: list[Instrument] = []
        for item in body.get("symbols", []) if isinstance(body, dict) else []:
            market = _CONTRACTS.get(item.get("contractType"))
            if market is None or item.get("contractStatus") != "TRADING":
                continue
            size = float(item["contractSize"])
            if not size > 0:
                continue
            expiry = int(item.get("deliveryDate", 0)) if market == "future" else None
            out.append(make_instrument(VENUE_ID, item["symbol"], item["baseAsset"], item["quoteAsset"], market,
                                       "inverse", size, expiry))
        return out
