"""A speculative reply: the answer's LLM stream, started beside the tool choice and kept if no tool is
chosen.

With an agent connected every turn first asks the LLM whether to call a tool, and the reply could only
start once that was known: a turn paid for both passes, one after the other. On a CPU, llama.cpp decodes
two short sequences in one batch at little more than the cost of one (decoding a small model is
memory-bound), so with a second slot the reply is drafted while the choice runs, and a turn that calls
no tool waits for the longer of the two instead of their sum. On a tool turn the draft is dropped, but
its prompt (system prompt and the caller's words) stays in the slot's cache for the reply that follows
the tool's result.

A draft gives way to any caller's request (`LLMQueue.gives_way`): under load it is stopped and the reply
starts after the choice, as without it. Once adopted as the answer it holds its slot like any reply.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from platform_core.engines.base import ChatMessage, EngineUnavailable, LanguageModel
from platform_core.engines.llm import LLMError
from platform_core.engines.llm.queue import LLMQueue


class DraftReply:
    def __init__(self, llm: LanguageModel, queue: LLMQueue, messages: Sequence[ChatMessage], max_tokens: int) -> None:
        self.queue = queue
        self.started = time.monotonic()
        self.first_token_at: float | None = None
        self._deltas: list[str] = []
        self._changed = asyncio.Event()
        self._finished = False
        self._failure: LLMError | EngineUnavailable | None = None
        self._task = asyncio.ensure_future(self._draft(llm, list(messages), max_tokens))

    async def _draft(self, llm: LanguageModel, messages: list[ChatMessage], max_tokens: int) -> None:
        try:
            with self.queue.gives_way():
                async for delta in llm.stream_chat(messages, max_tokens=max_tokens):
                    if delta and self.first_token_at is None:
                        self.first_token_at = time.monotonic()
                    self._deltas.append(delta)
                    self._changed.set()
        except (LLMError, EngineUnavailable) as exc:
            self._failure = exc
        finally:
            self._finished = True
            self._changed.set()

    async def adopt(self) -> bool:
        """Make the draft the turn's answer; False if it gave way or failed (then ask the LLM afresh)."""
        if self._finished:
            return self._failure is None and bool(self._deltas)
        if await self.queue.keep(self._task):  # the answer no longer gives way
            return True
        await self.close()
        return False

    async def deltas(self) -> AsyncIterator[str]:
        """The reply's text: what was drafted so far at once, then the rest as it comes."""
        sent = 0
        while True:
            while sent < len(self._deltas):
                yield self._deltas[sent]
                sent += 1
            if self._finished:
                if self._failure is not None:
                    raise self._failure
                return
            self._changed.clear()
            if sent == len(self._deltas) and not self._finished:
                await self._changed.wait()

    def cancel(self) -> None:
        """Stop drafting without waiting for the stream to close (its slot is free at once)."""
        self.queue.cancel(self._task)

    async def close(self) -> None:
        """Stop drafting (a tool was chosen, the turn was cancelled, or the reply is over)."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
