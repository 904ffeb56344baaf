"""A turn's LLM work started at the caller's pause, before the end of the turn is decided.

The listener transcribes at the caller's first pause (`pause_s`, 0.1 s of silence); with silence
endpointing the turn is committed at `endpoint_silence_s` (0.3 s) with that same transcript whenever the
caller stayed silent. The LLM would sit idle in between. So, as soon as the pause's transcript is known,
the responder starts what the turn will ask the LLM first:

- with an agent's tools, the tool choice itself (`choose_tool`: pure, nothing is called before the turn is
  committed), and beside it the reply's prompt (`warm_reply_prefix`), stopped once a tool is named;
- without tools, the reply itself (`DraftReply`): nothing is played before the commit, but its first
  sentence is on its way, and no second request processes the prompt again. (Only processing the
  prompt here, then asking for the reply at the commit, made the reply wait for the first request to
  end: 0.84 s e2e p50, the same as starting at the commit.)

The turn adopts the work when its transcript and the history are the ones it started from; otherwise (the
caller went on speaking, a typed turn) it is dropped. Every request here gives way to callers' requests
(`LLMQueue.gives_way`): under load the turn asks afresh, as without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm import LLMError
from platform_core.engines.llm.queue import LLMQueue
from platform_core.engines.runner import Engines
from platform_core.pipeline.draft import DraftReply
from platform_core.pipeline.prompt_cache import warm_reply_prefix
from platform_core.pipeline.tool_choice import ToolChoice, choose_tool
from platform_core.pipeline.tools import ToolSpec


class EarlyStart:
    """The LLM work for the caller's words `text`, said after `history_len` messages of history."""

    def __init__(
        self,
        engines: Engines,
        text: str,
        history_len: int,
        heard: list[ChatMessage],
        reply_prompt: list[ChatMessage],
        tools: Sequence[ToolSpec],
        max_reply_tokens: int,
    ) -> None:
        """`heard`: the recent history with the caller's words `text` last; `reply_prompt`: the reply's prompt."""
        self.text = text
        self.history_len = history_len
        self.tools = list(tools)
        self.started_at = time.monotonic()
        self.queue: LLMQueue = engines.llm_queue
        # Each gives way when a caller waits.
        self.prefix: asyncio.Task[None] | None = None
        self.choice: asyncio.Task[ToolChoice | None] | None = None
        # The reply itself: at once without tools; with them, once the choice is "no tool".
        self._llm, self._reply_prompt, self._max_reply_tokens = engines.llm, reply_prompt, max_reply_tokens
        self._reply: asyncio.Future[DraftReply] = asyncio.get_running_loop().create_future()
        self._reply_task: asyncio.Task[None] | None = None
        if tools:
            self.prefix = asyncio.ensure_future(warm_reply_prefix(engines, reply_prompt))
            self.choice = asyncio.ensure_future(self._choose(engines, heard, list(tools)))
        else:
            self._reply.set_result(self._start_reply())

    async def _choose(self, engines: Engines, heard: list[ChatMessage], tools: list[ToolSpec]) -> ToolChoice | None:
        with self.queue.gives_way("when_waiting"):
            choice = await choose_tool(engines.llm, heard, tools, on_call=self._stop_prefix)
        if choice is None:
            self._spawn_reply()
        return choice

    def _start_reply(self) -> DraftReply:
        return DraftReply(self._llm, self.queue, self._reply_prompt, self._max_reply_tokens)

    def _spawn_reply(self) -> None:
        """After "no tool": the reply, once the prefix beside the choice is processed (it is nearly done,
        and a reply started beside it would process the same prompt on another slot)."""

        async def after_prefix() -> None:
            if self.prefix is not None:
                await asyncio.wait({self.prefix})
            if not self._reply.done():
                self._reply.set_result(self._start_reply())

        self._reply_task = asyncio.ensure_future(after_prefix())

    async def reply(self) -> DraftReply | None:
        """The reply started before the commit (pipeline/draft.py), if there is one by now or on its way."""
        if not self._reply.done() and self._reply_task is not None:
            await asyncio.wait({self._reply_task})
        return self._reply.result() if self._reply.done() and not self._reply.cancelled() else None

    def _stop_prefix(self) -> None:
        if self.prefix is not None:
            self.queue.cancel(self.prefix)  # a call's arguments decode faster alone (prompt_cache.warm_reply_prefix)

    def matches(self, text: str, history_len: int, tools: Sequence[ToolSpec]) -> bool:
        """Whether this is the work of a turn whose words are `text` after `history_len` messages, with `tools`."""
        return text == self.text and history_len == self.history_len and list(tools) == self.tools

    def age_s(self) -> float:
        """Seconds since the work started."""
        return time.monotonic() - self.started_at

    async def tool_choice(self) -> tuple[bool, ToolChoice | None]:
        """(True, the choice) once it is in; (False, None) if it gave way or failed: then choose afresh."""
        task = self.choice
        if task is None:
            return False, None
        if not task.done() and not await self.queue.keep(task):
            self.cancel()
            return False, None
        with contextlib.suppress(asyncio.CancelledError, LLMError, EngineUnavailable):
            return True, await asyncio.shield(task)
        return False, None

    def cancel(self) -> None:
        for task in (self.prefix, self.choice):
            if task is not None:
                self.queue.cancel(task)
        if self._reply_task is not None:
            self._reply_task.cancel()
        if self._reply.done() and not self._reply.cancelled():
            self._reply.result().cancel()
        else:
            self._reply.cancel()
