"""Command-line entry of the ingestor (being built; see its issue)."""

from typing import Any


def register(sub: Any) -> None:
    """Add this service's sub-commands to the `cryptopulse` parser."""
