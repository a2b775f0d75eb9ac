"""What a market-data provider answers, independent of the provider (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MarketEntry:
    """One asset as a provider lists it: symbol upper case, supply and cap in units / USD."""

    symbol: str
    name: str
    circulating_supply: float
    market_cap: float
    provider_id: str = ""


class Provider(Protocol):
    """A source of current supplies and category membership (blocking calls, run in a thread)."""

    name: str

    def top(self, n: int) -> list[MarketEntry]:
        """The ``n`` largest assets by market cap, largest first."""

    def category(self, category_id: str, limit: int) -> list[MarketEntry]:
        """Up to ``limit`` members of a provider category, largest caps first."""

    def global_market_cap(self) -> float | None:
        """The provider's total crypto market cap in USD, if it has one."""
