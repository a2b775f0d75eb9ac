"""Prometheus metrics of the gateway, declared once (names: cryptopulse_gateway_<what>_<unit>)."""
