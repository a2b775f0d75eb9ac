"""Process helpers: children that die with their parent (supervisor, embedded broker), and the stop
event every long-running command waits on."""

from __future__ import annotations

import asyncio
import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when its parent dies, so no orphan survives a kill -9."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def stop_event() -> asyncio.Event:
    """An event the running loop sets on SIGTERM or SIGINT: the signal is taken by the event loop,
    not raised as a KeyboardInterrupt wherever the program happens to be."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
