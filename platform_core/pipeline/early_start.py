"""A turn's LLM work started at the caller's pause, before the end of the turn is decided.

The listener transcribes at the caller's first pause (`pause_s`, 0.1 s of silence); with silence
endpointing the turn is committed at `endpoint_silence_s` (0.3 s) with that same transcript whenever the
caller stayed silent. The LLM would sit idle in between. So, as soon as the pause's transcript is known,
the responder starts what the turn will ask the LLM first:

- the reply itself (`DraftReply`): nothing is played before the commit, but its first sentence is on
  its way, and no second request processes the prompt again. (Only processing the prompt here, then
  asking for the reply at the commit, made the reply wait for the first request to end: 0.84 s e2e
  p50, the same as starting at the commit.)
- with an agent's tools, beside the reply, the tool choice (`choose_tool`: pure, nothing is called before
  the turn is committed). The two prompts are processed in one batch and a "no tool" is one decoding
  step, so after it the reply is already decoding. As soon as the choice names a tool the reply stops
  (a call's arguments decode faster alone, and the answer needs the tool's result); what it processed of
  its prompt stays in the slot's cache for the reply after the tool. (Kept on beside a call, it made
  the tool turns' choice 380 -> 622 ms p50: two sequences decode at nearly twice the cost of one here.)

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
        self._llm, self._reply_prompt, self._max_reply_tokens = engines.llm, reply_prompt, max_reply_tokens
        # Both give way when a caller waits. The reply starts first: it takes the spare slot, and the choice
        # a callers' slot, which the turn can keep at the commit (LLMQueue.keep).
        self._draft: DraftReply | None = self._start_reply()
        self.choice: asyncio.Task[ToolChoice | None] | None = None
        if tools:
            self.choice = asyncio.ensure_future(self._choose(heard, list(tools)))

    async def _choose(self, heard: list[ChatMessage], tools: list[ToolSpec]) -> ToolChoice | None:
        """The tool choice; small talk first read as a call (its reply stopped) gets its reply afresh."""
        with self.queue.gives_way("when_waiting"):
            choice = await choose_tool(self._llm, heard, tools, on_call=self.stop_reply)
        if choice is None and self._draft is None:
            self._draft = self._start_reply()
        return choice

    def _start_reply(self) -> DraftReply:
        return DraftReply(self._llm, self.queue, self._reply_prompt, self._max_reply_tokens)

    def stop_reply(self) -> None:
        """A tool is being named: its arguments decode faster alone, and the reply needs its result. The
        reply's prompt processed so far stays in the slot's cache for the reply after the tool."""
        if self._draft is not None:
            self._draft.cancel()
            self._draft = None

    def reply(self) -> DraftReply | None:
        """The reply started before the commit (pipeline/draft.py), if it is still on."""
        return self._draft

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
        if self.choice is not None:
            self.queue.cancel(self.choice)
        self.stop_reply()
