"""The work started at the caller's pause, with an agent's tools: the reply and the tool choice side by side
on the LLM's two slots (pipeline/early_start.py), as pure logic.

The scripted LLM (tests/fake_engines.py) streams the choice and the reply, so the slots' rules are under test
and not the model's speed; tests/test_early_start.py runs the same work with the real llama.cpp and the seed
agent.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.queue import LLMQueue, QueuedLLM
from platform_core.engines.runner import Engines
from platform_core.pipeline.early_start import EarlyStart
from platform_core.pipeline.tool_choice import ToolChoice
from platform_core.pipeline.tools import ToolSpec
from tests.fake_engines import ScriptedLlm

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def router(choice: str, token_s: float) -> ScriptedLlm:
    """Writes `choice` after the tool choice's prefill and answers "one two three" otherwise."""
    return ScriptedLlm(reply=lambda _: "one two three", tool_choice=lambda _: choice, token_s=token_s, llguidance=True)


def early_start(model: ScriptedLlm, said: str) -> tuple[EarlyStart, LLMQueue]:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)  # the platform's default: one callers' slot, one spare
    engines = cast(Engines, SimpleNamespace(llm=QueuedLLM(model, queue), llm_queue=queue))
    heard = [ChatMessage("user", said)]
    prompt = [ChatMessage("system", "You are a helpful assistant."), *heard]
    return EarlyStart(engines, said, 0, heard, prompt, [WEATHER], max_reply_tokens=50), queue


async def test_a_choice_still_running_at_the_commit_is_kept_and_its_reply_beside_it_adopted() -> None:
    model = router('none"}', token_s=0.05)
    early, queue = early_start(model, "Thank you, that was helpful.")
    await asyncio.sleep(0.01)
    assert queue.running + queue.spare_running == 2  # the reply and the choice, side by side

    # The commit comes before the choice is in: the choice holds the callers' slot, so it is kept.
    assert await early.tool_choice() == (True, None)
    draft = early.reply()
    assert draft is not None and await draft.adopt()
    assert "".join([d async for d in draft.deltas()]) == "one two three"
    assert queue.preempted == 0 and model.finished == 1


async def test_the_reply_stops_as_soon_as_the_choice_names_a_tool() -> None:
    model = router('get_weather","arguments":{"location":"Paris"}}', token_s=0.05)
    early, queue = early_start(model, "What's the weather in Paris?")
    assert await early.tool_choice() == (True, ToolChoice("get_weather", {"location": "Paris"}))
    assert early.reply() is None  # the answer needs the tool's result
    await asyncio.sleep(0.01)
    assert model.abandoned == 1 and model.finished == 0
    assert queue.running == 0 and queue.spare_running == 0


async def test_small_talk_first_read_as_a_call_gets_its_reply_afresh() -> None:
    # The model starts naming the tool, and the argument it writes is said nowhere: no call, and the
    # reply stopped when the tool was named is started again.
    model = router('get_weather","arguments":{"location":"Lisbon"}}', token_s=0.02)
    early, _ = early_start(model, "How do I make a cup of tea?")
    assert await early.tool_choice() == (True, None)
    draft = early.reply()
    assert draft is not None and await draft.adopt()
    assert "".join([d async for d in draft.deltas()]) == "one two three"
    assert model.abandoned == 1 and model.finished == 1
