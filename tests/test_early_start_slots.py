"""The work started at the caller's pause, with an agent's tools: the reply and the tool choice side by side
on the LLM's two slots (pipeline/early_start.py), as pure logic.

Scripted stand-ins stream the choice and the reply, so the slots' rules are under test and not the model's
speed; tests/test_early_start.py runs the same work with the real llama.cpp and the seed agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any, cast

from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.queue import LLMQueue, QueuedLLM
from platform_core.engines.runner import Engines
from platform_core.pipeline.early_start import EarlyStart
from platform_core.pipeline.tool_choice import ToolChoice
from platform_core.pipeline.tools import ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


class ScriptedRouter:
    """Answers a tool-choice request (it has a grammar) with `choice` after the prefill, and any other
    with a three-word reply; a chunk every `pause_s`. Records the replies it finished or saw stopped."""

    name = "scripted"
    llguidance = True  # the embedded llama.cpp's prefilled choice

    def __init__(self, choice: str, pause_s: float = 0.05) -> None:
        self.choice = choice
        self.pause_s = pause_s
        self.replies_finished = 0
        self.replies_stopped = 0

    async def start(self) -> None:
        return None

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        if grammar is not None:
            for i in range(0, len(self.choice), 8):
                await asyncio.sleep(self.pause_s)
                yield self.choice[i : i + 8]
            return
        try:
            for word in ("one ", "two ", "three"):
                await asyncio.sleep(self.pause_s)
                yield word
            self.replies_finished += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.replies_stopped += 1
            raise

    async def aclose(self) -> None:
        return None


def early_start(model: ScriptedRouter, said: str) -> tuple[EarlyStart, LLMQueue]:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)  # the platform's default: one callers' slot, one spare
    engines = cast(Engines, SimpleNamespace(llm=QueuedLLM(model, queue), llm_queue=queue))
    heard = [ChatMessage("user", said)]
    prompt = [ChatMessage("system", "You are a helpful assistant."), *heard]
    return EarlyStart(engines, said, 0, heard, prompt, [WEATHER], max_reply_tokens=50), queue


async def test_a_choice_still_running_at_the_commit_is_kept_and_its_reply_beside_it_adopted() -> None:
    model = ScriptedRouter('none"}', pause_s=0.05)
    early, queue = early_start(model, "Thank you, that was helpful.")
    await asyncio.sleep(0.01)
    assert queue.running + queue.spare_running == 2  # the reply and the choice, side by side

    # The commit comes before the choice is in: the choice holds the callers' slot, so it is kept.
    assert await early.tool_choice() == (True, None)
    draft = early.reply()
    assert draft is not None and await draft.adopt()
    assert "".join([d async for d in draft.deltas()]) == "one two three"
    assert queue.preempted == 0 and model.replies_finished == 1


async def test_the_reply_stops_as_soon_as_the_choice_names_a_tool() -> None:
    model = ScriptedRouter('get_weather","arguments":{"location":"Paris"}}', pause_s=0.05)
    early, queue = early_start(model, "What's the weather in Paris?")
    assert await early.tool_choice() == (True, ToolChoice("get_weather", {"location": "Paris"}))
    assert early.reply() is None  # the answer needs the tool's result
    await asyncio.sleep(0.01)
    assert model.replies_stopped == 1 and model.replies_finished == 0
    assert queue.running == 0 and queue.spare_running == 0


async def test_small_talk_first_read_as_a_call_gets_its_reply_afresh() -> None:
    # The model starts naming the tool, and the argument it writes is said nowhere: no call, and the
    # reply stopped when the tool was named is started again.
    model = ScriptedRouter('get_weather","arguments":{"location":"Lisbon"}}', pause_s=0.02)
    early, _ = early_start(model, "How do I make a cup of tea?")
    assert await early.tool_choice() == (True, None)
    draft = early.reply()
    assert draft is not None and await draft.adopt()
    assert "".join([d async for d in draft.deltas()]) == "one two three"
    assert model.replies_stopped == 1 and model.replies_finished == 1
