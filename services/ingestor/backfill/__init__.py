"""Warm start from the venues' REST klines (``cryptopulse backfill``): see docs/live.md."""
