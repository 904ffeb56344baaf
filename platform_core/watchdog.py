"""Measures how long the event loop is blocked: the GUI shares this loop, so stalls are visible jank.

A stall is only useful if it says where it came from, so a small sampler thread looks at the loop
thread's stack while the loop is late and the stall event carries the code it was stuck in. The
kernel's account of the loop thread (Linux's schedstat) tells computing from waiting for a core.

The sampler never drops a reference to a frame itself: a frame whose function returned while the
sampler held it owns that function's locals, and the last reference going on the sampler thread
freed them there. In the app the loop thread is Qt's, and those locals are Qt objects (a widget, a
QPicture being painted): one destroyed off its thread leaves its timers registered with the GUI
thread, and the next timer event went to freed memory (a segfault in QTimerInfoList::activateTimers,
under processEvents). The frames go back to the loop thread, which lets go of them in `take`.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections import Counter
from types import FrameType

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
        self._frames: list[object] = []  # every frame a sample touched, for the loop thread to let go of
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def beat(self, t: float) -> None:
        self._last_beat = t

    def take(self) -> str:
        """The code the loop was seen in most often since the last beat ("" if it was never late).

        Call it on the loop thread: the frames sampled meanwhile are let go of here (module docstring)."""
        with self._lock:
            samples, self._samples = self._samples, Counter()
            frames, self._frames = self._frames, []
        del frames
        return samples.most_common(1)[0][0] if samples else ""

    def stop(self) -> None:
        """Call it on the loop thread, as `take`."""
        self._stopped.set()
        with self._lock:
            frames, self._frames = self._frames, []
        del frames

    def run(self) -> None:
        while not self._stopped.wait(_SAMPLE_EVERY_S):
            if time.monotonic() - self._last_beat < self._late_after_s:
                continue
            self._sample()

    def _sample(self) -> None:
        # `held` keeps every frame object this touches until the loop thread takes it (module docstring).
        current = sys._current_frames()
        held: list[object] = [current]
        frame: FrameType | None = current.get(self._loop_thread)
        del current
        stack: list[tuple[str, int, str]] = []  # (file, line, function), innermost first
        while frame is not None:
            held.append(frame)
            stack.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
            frame = frame.f_back
        with self._lock:
            self._frames.append(held)
            del held  # under the lock: `take` cannot have let go of the list's other reference yet
            if stack:
                self._samples[_describe(stack[::-1])] += 1


def _describe(stack: list[tuple[str, int, str]]) -> str:
    """The innermost frames outside the event loop's own machinery; `stack` is (file, line, function)
    from the outermost frame in, the result innermost first."""
    frames = [f for f in stack if not any(part in f[0] for part in _OWN_FILES)]
    return " < ".join(f"{_short(filename)}:{line} {name}" for filename, line, name in reversed(frames[-3:]))


def _short(filename: str) -> str:
    for marker in ("site-packages/", "platform_core/", "app/", "agent_sdk/"):
        if marker in filename:
            return filename[filename.index(marker) :].removeprefix("site-packages/")
    return filename.rsplit("/", 1)[-1]
