"""The terminal side of `serve` and `demo`: progress and errors printed, and the signals that stop them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from platform_core.errors import explained
from platform_core.events import EngineProgress, ErrorOccurred, Event


def print_progress(event: Event) -> None:
    """A bus subscriber: engine progress on stdout, errors with their hint on stderr."""
    if isinstance(event, EngineProgress):
        pct = f" {event.fraction:4.0%}" if event.fraction is not None else ""
        print(f"[{event.component}]{pct} {event.message}", flush=True)
    elif isinstance(event, ErrorOccurred):
        print(f"error ({event.where}): {explained(event.message, event.hint)}", file=sys.stderr, flush=True)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (where the loop can take signal handlers): a server's way out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
