"""Measures how long the event loop is blocked: the GUI shares this loop, so stalls are visible jank.

A stall is only useful if it says where it came from, so a small sampler thread looks at the loop
thread's stack while the loop is late and the stall event carries the code it was stuck in. The
kernel's account of the loop thread (Linux's schedstat) tells computing from waiting for a core.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections import Counter

from platform_core.bus import EventBus
from platform_core.events import LoopStall

_SAMPLE_EVERY_S = 0.01
# Frames that only say "the loop was running" or "something was being imported": the caller is news.
_OWN_FILES = ("asyncio/", "qasync/", "selectors.py", "threading.py", "<frozen ")


class LoopWatchdog:
    """Wakes every `interval_s`; a wake-up later than `threshold_s` is a stall, published on the bus."""

    def __init__(self, bus: EventBus, interval_s: float = 0.02, threshold_s: float = 0.05) -> None:
        self.bus = bus
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self.worst_s = 0.0
        self.worst_where = ""
        self.stalls = 0
        self._task: asyncio.Task[None] | None = None
        self._sampler: _StackSampler | None = None

    def start(self) -> None:
        self._sampler = _StackSampler(threading.get_ident(), self.interval_s + self.threshold_s / 2)
        self._sampler.start()
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._sampler is not None:
            self._sampler.stop()

    async def _run(self) -> None:
        assert self._sampler is not None
        while True:
            before = time.monotonic()
            cpu_before = thread_cpu_account()
            self._sampler.beat(before)
            await asyncio.sleep(self.interval_s)
            late = time.monotonic() - before - self.interval_s
            where = self._sampler.take()
            if late > self.worst_s:
                self.worst_s, self.worst_where = late, where
            if late > self.threshold_s:
                self.stalls += 1
                cpu_after = thread_cpu_account()
                on_cpu = waiting = None
                if cpu_before is not None and cpu_after is not None:
                    on_cpu, waiting = (after - b for after, b in zip(cpu_after, cpu_before, strict=True))
                self.bus.publish(LoopStall(duration_s=late, where=where, on_cpu_s=on_cpu, waiting_for_cpu_s=waiting))


def thread_cpu_account() -> tuple[float, float] | None:
    """This thread's seconds on a core and seconds runnable but waiting for one, since it started."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            on_cpu_ns, waiting_ns, _ = stat.read().split()
    except (OSError, ValueError):
        return None
    return int(on_cpu_ns) / 1e9, int(waiting_ns) / 1e9


class _StackSampler(threading.Thread):
    """Samples the loop thread's stack every 10 ms while the loop has not beaten for `late_after_s`."""

    def __init__(self, loop_thread: int, late_after_s: float) -> None:
        super().__init__(name="loop-stall-sampler", daemon=True)
        self._loop_thread = loop_thread
        self._late_after_s = late_after_s
        self._last_beat = time.monotonic()
        self._samples: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def beat(self, t: float) -> None:
        self._last_beat = t

    def take(self) -> str:
        """The code the loop was seen in most often since the last beat ("" if it was never late)."""
        with self._lock:
            samples, self._samples = self._samples, Counter()
        return samples.most_common(1)[0][0] if samples else ""

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(_SAMPLE_EVERY_S):
            if time.monotonic() - self._last_beat < self._late_after_s:
                continue
            frame = sys._current_frames().get(self._loop_thread)
            if frame is not None:
                where = _describe(traceback.extract_stack(frame))
                with self._lock:
                    self._samples[where] += 1


def _describe(stack: traceback.StackSummary) -> str:
    """The innermost frames outside the event loop's own machinery, innermost last."""
    frames = [f for f in stack if not any(part in f.filename for part in _OWN_FILES)]
    return " < ".join(f"{_short(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames[-3:]))


def _short(filename: str) -> str:
    for marker in ("site-packages/", "platform_core/", "app/", "agent_sdk/"):
        if marker in filename:
            return filename[filename.index(marker) :].removeprefix("site-packages/")
    return filename.rsplit("/", 1)[-1]
