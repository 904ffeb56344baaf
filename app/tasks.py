"""The app's background tasks on the Qt event loop: kept alive until done, and a crash is reported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundTasks:
    """Tasks started from Qt slots: nothing awaits them, so this holds them (the loop keeps only weak
    references) and passes a crash to `on_crash` instead of losing it."""

    def __init__(self, on_crash: Callable[[BaseException], None]) -> None:
        self._on_crash = on_crash
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, coro: Coroutine[object, None, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report_crash)
        return task

    def _report_crash(self, task: asyncio.Task[T]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("app task failed", exc_info=exc)
            self._on_crash(exc)
