"""Printing the platform's progress and errors on the terminal (`serve` and `demo`)."""

from __future__ import annotations

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
