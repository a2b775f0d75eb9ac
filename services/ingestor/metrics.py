"""Prometheus metrics of the ingestor, declared once (names: cryptopulse_ingestor_<what>_<unit>)."""
