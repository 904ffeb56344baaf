"""Lower the CPU priority of engine threads, so the event loop (and a GUI sharing it) gets a core first.

On Linux nice is a per-thread value that new threads inherit from the thread that creates them; so a
worker lowered before it starts an engine's thread pool takes the pool along. Elsewhere setpriority()
and nice() act on the whole process, so only a separate engine process can be lowered there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path

_LINUX = sys.platform.startswith("linux")


def lower_this_threads_priority(nice: int) -> None:
    """The calling thread, and the threads it creates from now on, run `nice` steps nicer (Linux only)."""
    if nice > 0 and _LINUX:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def lower_process_priority(nice: int) -> None:
    """Every thread of this process (those that imports already started included) runs `nice` steps nicer."""
    if nice <= 0:
        return
    if _LINUX:
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that has just ended
                os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
    elif hasattr(os, "nice"):
        os.nice(nice)
