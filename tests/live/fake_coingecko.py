"""A fake CoinGecko API: ``/coins/markets`` (``vs_currency``, ``order``, ``per_page`` <= 250,
``page``, ``category``) and ``/global`` in the documented JSON shapes, from a coin table."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.reference.service import read_snapshot
from tests.live.fakerest import Answer, FakeRest, json_answer

CATEGORY = {"ai": "artificial-intelligence", "l1": "layer-1", "l2": "layer-2", "defi": "decentralized-finance-defi",
            "meme": "meme-token", "stablecoin": "stablecoins"}


@dataclass
class Coin:
    id: str
    symbol: str
    name: str
    price: float
    circulating_supply: float | None
    categories: set[str] = field(default_factory=set)

    @property
    def market_cap(self) -> float:
        return self.price * (self.circulating_supply or 0.0)


def snapshot_coins(growth: float = 1.0) -> list[Coin]:
    """The bundled snapshot's assets as CoinGecko coins (sectors as categories), supplies times ``growth``."""
    return [Coin(r["asset"].lower(), r["asset"], r["name"], 1.0, r["circulating_supply"] * growth,
                 {CATEGORY[s] for s in r["sectors"]}) for r in read_snapshot().records]


class FakeCoinGecko(FakeRest):
    def __init__(self, coins: list[Coin], global_cap: float = 3.0e12) -> None:
        super().__init__()
        self.coins = coins
        self.global_cap = global_cap
        self.route("/api/v3/coins/markets", self._markets)
        self.route("/api/v3/global", self._global)

    @property
    def root(self) -> str:
        return f"{self.url}/api/v3"

    def _row(self, rank: int, coin: Coin) -> dict[str, object]:
        return {"id": coin.id, "symbol": coin.symbol.lower(), "name": coin.name,
                "image": f"https://example.invalid/{coin.id}.png", "current_price": coin.price,
                "market_cap": coin.market_cap, "market_cap_rank": rank, "fully_diluted_valuation": None,
                "total_volume": coin.market_cap / 20, "high_24h": coin.price, "low_24h": coin.price,
                "price_change_24h": 0.0, "price_change_percentage_24h": 0.0, "circulating_supply":
                coin.circulating_supply, "total_supply": coin.circulating_supply, "max_supply": None,
                "last_updated": "2026-12-02T17:00:00.000Z"}

    def _markets(self, query: dict[str, str]) -> Answer:
        if query.get("vs_currency") != "usd":
            return json_answer({"error": "missing 'vs_currency' parameter"}, 400)
        per_page = int(query.get("per_page", 100))
        page = int(query.get("page", 1))
        if not 1 <= per_page <= 250:
            return json_answer({"error": "per_page must be between 1 and 250"}, 400)
        ranked = sorted(self.coins, key=lambda c: -c.market_cap)
        rows = [(rank, c) for rank, c in enumerate(ranked, 1)
                if "category" not in query or query["category"] in c.categories]
        chunk = rows[(page - 1) * per_page: page * per_page]
        return json_answer([self._row(rank, coin) for rank, coin in chunk])

    def _global(self, _query: dict[str, str]) -> Answer:
        return json_answer({"data": {"active_cryptocurrencies": len(self.coins),
                                     "total_market_cap": {"usd": self.global_cap, "btc": 1.0e7}}})
