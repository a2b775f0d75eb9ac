"""Reference data that stays current: circulating supplies and sector membership from a market-data
provider, published to the compacted ``assets`` topic (``cryptopulse assets refresh``)."""
