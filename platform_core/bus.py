"""The event bus: one place where every typed event is published and read.

Publishing is synchronous and cheap; subscribers are plain callbacks (the GUI bridge) or async
streams with their own bounded queue (tests, benchmarks, per-call feeds). A slow stream never
blocks the publisher: when its queue is full the oldest events are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from platform_core.events import Event

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]


class EventStream:
    """An async iterator over the events published after it was opened."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        return await self._queue.get()

    async def next_matching(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """The next event for which `predicate` is true; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._queue.get()
                if predicate(event):
                    return event


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the loop that owns the bus, for `publish_threadsafe`."""
        self._loop = loop

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(event)` on the loop thread for every event; returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver `event` to every subscriber. Call from the loop thread only."""
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:  # a broken subscriber must not break the platform
                log.exception("event subscriber %r failed on %s", callback, event.kind)

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from a worker thread: the event is delivered on the bus's loop."""
        if self._loop is None:
            raise RuntimeError("EventBus.bind_loop() was not called; cannot publish from a thread")
        self._loop.call_soon_threadsafe(self.publish, event)

    @asynccontextmanager
    async def stream(self, maxsize: int = 10_000) -> AsyncIterator[EventStream]:
        """`async with bus.stream() as events: async for e in events: ...`"""
        stream = EventStream(maxsize)
        unsubscribe = self.subscribe(stream._offer)
        try:
            yield stream
        finally:
            unsubscribe()
