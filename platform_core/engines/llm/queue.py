"""Requests to the LLM wait their turn for its slots, first come first served, for a bounded time.

llama.cpp's server also queues requests beyond its slots, but silently: a request waiting there sees
no bytes until its turn, and the HTTP read timeout (30 s) fails it. Queued here instead, a request's
wait is known (`busy`, `waiting`), bounded (`max_wait_s`, then `LLMBusy`) and cancellable at once
(a barge-in or hang-up leaves the queue without touching the server).

A request made inside `gives_way()` (a prompt-cache warm-up, a reply drafted beside the tool choice)
never makes a caller wait: it runs on a spare slot of the server (`spare`), or on a free callers' slot
until a caller needs it, and is stopped with `LLMPreempted` as soon as a caller has to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from platform_core.engines.base import ChatMessage, LanguageModel, PausableEngine
from platform_core.engines.llm.errors import LLMError

DEFAULT_MAX_WAIT_S = 20.0

# Set by LLMQueue.gives_way() for the requests made inside it (in that task and the ones it starts):
# None (a caller's request), "when_waiting" (stops when a caller has to wait: a reply draft) or
# "always" (stops when any caller's request starts: a prompt warm-up, which would only compete with it).
GivesWay = Literal["when_waiting", "always"]
_GIVES_WAY: ContextVar[GivesWay | None] = ContextVar("llm_request_gives_way", default=None)


class LLMBusy(LLMError):
    """A request waited `max_wait_s` for a free slot of the LLM (every slot served other callers)."""


class LLMPreempted(LLMError):
    """A request that gives way (a warm-up, a draft) was stopped because a caller needed the LLM."""


@dataclass
class _GivingWay:
    """A running request that gives way: the slot it holds, and whether it was asked to stop."""

    gives_way: GivesWay
    on_spare: bool
    asked_to_stop: bool = False
    released: bool = False  # its slot is free again (at once when asked to stop: the next request has it)


class LLMQueue:
    """`slots` callers' requests at once, the rest wait; `spare` more server slots serve only requests that
    give way (warm-ups, reply drafts), never while a caller waits."""

    def __init__(self, slots: int = 1, max_wait_s: float = DEFAULT_MAX_WAIT_S, spare: int = 0) -> None:
        self.slots = max(1, slots)
        self.spare = max(0, spare)
        self.max_wait_s = max_wait_s
        self._free = asyncio.Semaphore(self.slots)
        self.running = 0  # requests holding one of the callers' slots
        self.waiting = 0  # requests waiting for one
        self.spare_running = 0  # requests on a spare slot
        self.preempted = 0  # requests that gave way, since the start
        self._giving_way: dict[asyncio.Task[Any], _GivingWay] = {}
        self._kept: set[asyncio.Task[Any]] = set()  # tasks whose requests stopped giving way

    def snapshot(self) -> dict[str, int]:
        """The queue's state for the health report."""
        return {
            "slots": self.slots,
            "running": self.running,
            "waiting": self.waiting,
            "spare_slots": self.spare,
            "preempted": self.preempted,
        }

    @property
    def busy(self) -> bool:
        """Whether every callers' slot is taken (by a caller, or by a request that would give way)."""
        return self.running + self.waiting >= self.slots

    @property
    def callers_would_wait(self) -> bool:
        """Whether a caller's request made now would wait (requests that give way do not count)."""
        giving_way = sum(1 for h in self._giving_way.values() if not h.on_spare and not h.released)
        return self.running - giving_way + self.waiting >= self.slots

    @staticmethod
    @contextlib.contextmanager
    def gives_way(when: GivesWay = "when_waiting") -> Iterator[None]:
        """Requests made inside give way to callers' requests (made outside): see GivesWay."""
        token = _GIVES_WAY.set(when)
        try:
            yield
        finally:
            _GIVES_WAY.reset(token)

    async def keep(self, task: asyncio.Task[Any]) -> bool:
        """`task`'s request stops giving way (a draft that became the answer) and counts as a caller's from
        now on; False if no callers' slot is free for it at once (then it should be dropped). A task that
        has not reached its request yet (kept in the loop step it was started in) makes it as a caller's."""
        holder = self._giving_way.get(task)
        if holder is None and not task.done():
            self._kept.add(task)
            task.add_done_callback(self._kept.discard)
            return True
        if holder is None or holder.asked_to_stop:
            return False  # over, or already asked to stop
        if holder.on_spare:
            if self.busy:
                return False
            await self._free.acquire()  # free: returns at once
            self.spare_running -= 1
            self.running += 1
            holder.on_spare = False
        del self._giving_way[task]
        self._kept.add(task)
        task.add_done_callback(self._kept.discard)
        return True

    def cancel(self, task: asyncio.Task[Any]) -> None:
        """Cancel `task`, whose request gives way, and free its slot now rather than once the cancellation
        has run: work started in the same step (the next pause's) would otherwise find the LLM busy."""
        holder = self._giving_way.get(task)
        if holder is not None:
            self._release(holder)
        task.cancel()

    def _release(self, holder: _GivingWay) -> None:
        if holder.released:
            return
        holder.released = True
        if holder.on_spare:
            self.spare_running -= 1
        else:
            self.running -= 1
            self._free.release()

    def _preempt(self, *, caller_waits: bool) -> None:
        """Stop the requests that give way to this one: drafts if a caller waits, warm-ups always."""
        for task, holder in self._giving_way.items():
            if not holder.asked_to_stop and (caller_waits or holder.gives_way == "always"):
                holder.asked_to_stop = True
                self._release(holder)
                task.cancel()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        gives_way = _GIVES_WAY.get()
        if gives_way is not None and task is not None and task not in self._kept:
            async with self._giving_way_slot(task, gives_way):
                yield
            return
        self._preempt(caller_waits=self.running >= self.slots)
        if self._free.locked():  # `waiting` counts only the requests that really wait
            self.waiting += 1
            try:
                await asyncio.wait_for(self._free.acquire(), self.max_wait_s)
            except TimeoutError:
                raise LLMBusy(
                    f"The language model was busy with other callers for {self.max_wait_s:.0f} s",
                    "Fewer callers at once, or more LLM slots (llm_parallel), or a longer llm_queue_wait_s.",
                ) from None
            finally:
                self.waiting -= 1
        else:
            await self._free.acquire()  # free: returns at once
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()

    @contextlib.asynccontextmanager
    async def _giving_way_slot(self, task: asyncio.Task[Any], gives_way: GivesWay) -> AsyncIterator[None]:
        """A spare slot, else a free callers' slot (until a caller needs it), else `LLMPreempted` at once."""
        if gives_way == "when_waiting":
            self._preempt(caller_waits=False)  # a draft is for a turn: the warm-ups give way to it
        on_spare = self.spare_running < self.spare
        if self.waiting or (gives_way == "always" and self.running) or (not on_spare and self.busy):
            raise LLMPreempted("Callers are using the language model", "Nothing to do: the request gave way.")
        if on_spare:
            self.spare_running += 1
        else:
            await self._free.acquire()  # free: returns at once
            self.running += 1
        holder = self._giving_way[task] = _GivingWay(gives_way, on_spare)
        try:
            yield
        except asyncio.CancelledError:
            if not holder.asked_to_stop or task in self._kept:
                raise  # a barge-in or hang-up, not a preemption
            task.uncancel()
            self.preempted += 1
            raise LLMPreempted("A caller's turn needed the language model", "Nothing to do: it gave way.") from None
        finally:
            self._giving_way.pop(task, None)
            self._release(holder)


class QueuedLLM:
    """A LanguageModel whose every request holds one of `queue`'s slots while it streams."""

    def __init__(self, inner: LanguageModel, queue: LLMQueue) -> None:
        self.inner = inner
        self.queue = queue
        self.name = inner.name

    async def start(self) -> None:
        await self.inner.start()

    @property
    def llguidance(self) -> bool:
        """Whether the wrapped engine takes an llguidance grammar (stream_chat's `grammar`)."""
        return getattr(self.inner, "llguidance", False) is True

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        async with self.queue.slot():
            async for delta in self.inner.stream_chat(
                messages, json_schema=json_schema, grammar=grammar, max_tokens=max_tokens, temperature=temperature
            ):
                yield delta

    def pause(self) -> None:
        if isinstance(self.inner, PausableEngine):
            self.inner.pause()

    def resume(self) -> None:
        if isinstance(self.inner, PausableEngine):
            self.inner.resume()

    async def aclose(self) -> None:
        await self.inner.aclose()
