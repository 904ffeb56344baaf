"""The reply drafted beside the tool choice (pipeline/draft.py), as pure logic: a scripted stand-in
streams the words so the timing rules are under test, not the model. tests/test_responder_tools.py and
bench/voice_latency.py --agent run the same path with the real llama.cpp and a real agent."""

from __future__ import annotations

import asyncio

from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.queue import LLMQueue, QueuedLLM
from platform_core.pipeline.draft import DraftReply
from tests.test_llm_queue import SlowModel, giving_way, reply

PROMPT = [ChatMessage("user", "Hello there.")]


async def text_of(draft: DraftReply) -> str:
    return "".join([d async for d in draft.deltas()])


async def test_an_adopted_draft_gives_what_it_drafted_at_once_then_the_rest() -> None:
    queue = LLMQueue(slots=1, spare=1)
    model = SlowModel(pause_s=0.1)
    draft = DraftReply(QueuedLLM(model, queue), queue, PROMPT, 64)
    await asyncio.sleep(0.15)  # the tool choice runs meanwhile: one word is drafted
    assert await draft.adopt()
    stream = draft.deltas()
    assert await stream.__anext__() == "one "  # type: ignore[attr-defined]  # without waiting
    assert "".join([d async for d in stream]) == "two three"
    assert draft.first_token_at is not None and queue.running == 0 and queue.spare_running == 0
    await draft.close()


async def test_a_draft_finished_before_the_choice_is_the_whole_answer() -> None:
    queue = LLMQueue(slots=1, spare=1)
    draft = DraftReply(QueuedLLM(SlowModel(pause_s=0.01), queue), queue, PROMPT, 64)
    await asyncio.sleep(0.1)
    assert await draft.adopt() and await text_of(draft) == "one two three"


async def test_a_draft_that_gave_way_to_a_caller_is_not_adopted() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    llm = QueuedLLM(SlowModel(pause_s=0.1), queue)
    choice = asyncio.ensure_future(reply(llm, "this turn's tool choice"))
    await asyncio.sleep(0.01)
    draft = DraftReply(llm, queue, PROMPT, 64)
    await asyncio.sleep(0.01)
    other = asyncio.ensure_future(reply(llm, "another caller"))  # waits: the draft stops
    await asyncio.sleep(0.01)
    assert not await draft.adopt()  # the reply is asked afresh, in the queue
    assert await choice == await other == "one two three" and queue.preempted == 1


async def test_closing_a_draft_frees_its_slot_at_once() -> None:
    queue = LLMQueue(slots=1, spare=1)
    model = SlowModel(pause_s=0.5)
    draft = DraftReply(QueuedLLM(model, queue), queue, PROMPT, 64)
    await asyncio.sleep(0.01)
    assert queue.spare_running == 1
    await draft.close()  # a tool was chosen
    assert queue.spare_running == 0 and model.running == 0


async def test_a_draft_started_with_the_tool_choice_runs_beside_it() -> None:
    # The responder starts the draft, then the choice at once: the choice's request must not look like
    # a waiting caller to the draft (it would give way at once and the turn pay for both passes).
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    model = SlowModel(pause_s=0.1)
    llm = QueuedLLM(model, queue)
    draft = DraftReply(llm, queue, PROMPT, 64)
    choice = asyncio.ensure_future(reply(llm, "tool choice"))
    await asyncio.sleep(0.05)
    assert model.running == 2 and queue.running == 1 and queue.spare_running == 1
    assert await choice == "one two three"
    assert await draft.adopt() and await text_of(draft) == "one two three" and queue.preempted == 0


async def test_a_draft_takes_the_spare_slot_from_a_warm_up() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    llm = QueuedLLM(SlowModel(pause_s=0.2), queue)

    warming = giving_way(llm, "warm-up", "always")
    await asyncio.sleep(0.01)
    draft = DraftReply(llm, queue, PROMPT, 64)
    await asyncio.sleep(0.01)
    assert queue.spare_running == 1 and queue.running == 0  # the draft's, the warm-up stopped
    assert (await asyncio.gather(warming, return_exceptions=True))[0].__class__.__name__ == "LLMPreempted"
    assert await draft.adopt() and await text_of(draft) == "one two three"
