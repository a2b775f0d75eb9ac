"""Prometheus metrics of the processor, declared once (names: cryptopulse_processor_<what>_<unit>)."""
