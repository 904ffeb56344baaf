"""Giving the memory a finished call freed back to the operating system.

A call allocates and frees many native buffers on several threads (aiortc's per-call decoder thread,
the encoder in the default executor, PyAV frames and resamplers, ONNX Runtime tensors, numpy blocks).
glibc keeps freed chunks in its per-thread arenas and only returns the top of each heap, so the
process's RSS holds tens of MiB no object uses although nothing outlives its call (bench/memory.py,
docs/engines.md). `malloc_trim(0)` walks every arena and returns their free pages; it is cheap next to
a call (a few ms) and runs on a worker thread, off the event loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; True if glibc released any. Blocks for a few ms: call
    it on a worker thread."""
    trim = _malloc_trim()
    if trim is None:
        return False
    released = bool(trim(0))
    log.debug("malloc_trim: %s", "released free pages" if released else "nothing to release")
    return released
