"""A turn's LLM work started at the caller's pause, before the end of the turn is decided.

The listener transcribes at the caller's first pause (`pause_s`, 0.1 s of silence); with silence
endpointing the turn is committed at `endpoint_silence_s` (0.3 s) with that same transcript whenever the
caller stayed silent. The LLM would sit idle in between. So, as soon as the pause's transcript is known,
the responder starts what the turn will ask the LLM first:

- with an agent's tools, the tool choice itself (`choose_tool`: pure, nothing is called before the turn is
  committed), and beside it the reply's prompt (`warm_reply_prefix`), stopped once a tool is named;
- without tools, the reply's prompt, so the reply starts from its KV cache.

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
    ) -> None:
        """`heard`: the recent history with the caller's words `text` last; `reply_prompt`: the reply's prompt."""
        self.text = text
        self.history_len = history_len
        self.tools = list(tools)
        self.started_at = time.monotonic()
        self.queue: LLMQueue = engines.llm_queue
        # It gives way when a caller waits.
        self.prefix: asyncio.Task[None] = asyncio.ensure_future(warm_reply_prefix(engines, reply_prompt))
        self.choice: asyncio.Task[ToolChoice | None] | None = None
        if tools:
            self.choice = asyncio.ensure_future(self._choose(engines, heard, list(tools)))

    async def _choose(self, engines: Engines, heard: list[ChatMessage], tools: list[ToolSpec]) -> ToolChoice | None:
        with self.queue.gives_way("when_waiting"):
            return await choose_tool(engines.llm, heard, tools, on_call=self._stop_prefix)

    def _stop_prefix(self) -> None:
        self.prefix.cancel()  # a call's arguments decode faster alone (prompt_cache.warm_reply_prefix)

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
                task.cancel()
