"""Errors that stop a service at start-up with a one-line, actionable message."""


class StartupError(RuntimeError):
    """Start-up cannot go on; ``str(exc)`` says what is wrong and what to do about it."""
