"""Command-line entry of the scenario tools (being built; see its issue)."""

from typing import Any


def register(sub: Any) -> None:
    """Add the scenario's sub-commands (``report``) to the `cryptopulse` parser."""
