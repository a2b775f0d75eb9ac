"""Settings of the reference-data refresh (environment ``CRYPTOPULSE_<FIELD>``; CLI flags override)."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.settings import register, setting


@register
@dataclass(frozen=True)
class ReferenceSettings:
    assets_provider: str = setting("coingecko", "Market-data provider of supplies and sector membership.")
    assets_provider_url: str = setting(
        "https://api.coingecko.com/api/v3",
        "Provider API root (CoinGecko Pro: https://pro-api.coingecko.com/api/v3).")
    assets_api_key: str | None = setting(
        None, "Provider API key (CoinGecko demo or pro key; sent as a header, never logged). Unset: keyless.")
    assets_top_n: int = setting(250, "How many assets by market cap the refresh takes (plus every sector's members).")
    assets_category_limit: int = setting(250, "Members per provider category fetched (largest caps first, <= 250).")
    assets_category_map: str = setting(
        "", "JSON file mapping sector ids to provider categories. Empty: the bundled services/reference/data/categories.json.")
    assets_requests_per_minute: float = setting(
        10.0, "Requests per minute to the provider (CoinGecko keyless: ~5-15/min; demo key: 30/min).")
    assets_refresh_interval: float = setting(3600.0, "Seconds between refreshes while `up --source live` runs.")
    assets_timeout: float = setting(20.0, "Seconds one provider request may take.")
