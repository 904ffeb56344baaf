"""Measures how long the event loop is blocked: the GUI shares this loop, so stalls are visible jank."""

from __future__ import annotations

import asyncio
import time

from platform_core.bus import EventBus
from platform_core.events import LoopStall


class LoopWatchdog:
    """Wakes every `interval_s`; a wake-up later than `threshold_s` is a stall, published on the bus."""

    def __init__(self, bus: EventBus, interval_s: float = 0.02, threshold_s: float = 0.05) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self.worst_s = 0.0
        self.stalls = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval_s)
            late = time.monotonic() - before - self.interval_s
            self.worst_s = max(self.worst_s, late)
            if late > self.threshold_s:
                self.stalls += 1
                self.bus.publish(LoopStall(duration_s=late))
