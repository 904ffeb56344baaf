"""The LLM queue, the engine health record and the stuck-worker report, as pure logic.

No engine runs here: the rules are under test, not the model's speed, so scripted stand-ins stream
the replies and block the workers; tests/test_engine_faults.py and bench/concurrency.py run the same
paths with the real llama.cpp, whisper and Piper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from platform_core.engines.base import ChatMessage
from platform_core.engines.health import EngineHealth, EngineStatus
from platform_core.engines.llm.embedded_llama import describe_exit, restart_delay
from platform_core.engines.llm.queue import GivesWay, LLMBusy, LLMPreempted, LLMQueue, QueuedLLM
from platform_core.engines.runner import Engines

HELLO = [ChatMessage("user", "Hello.")]


class SlowModel:
    """Streams three words, `pause_s` apart, and records how many requests ran at once."""

    name = "scripted"

    def __init__(self, pause_s: float = 0.05) -> None:
        self.pause_s = pause_s
        self.running = 0
        self.most_at_once = 0
        self.served: list[str] = []

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
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            for word in ("one ", "two ", "three"):
                await asyncio.sleep(self.pause_s)
                yield word
            self.served.append(messages[-1].content)
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        return None


async def reply(llm: QueuedLLM, text: str) -> str:
    return "".join([d async for d in llm.stream_chat([ChatMessage("user", text)])])


def giving_way(llm: QueuedLLM, text: str, when: GivesWay = "when_waiting") -> asyncio.Future[str]:
    """`text`'s reply as a request that gives way (a draft by default, or a warm-up with "always")."""

    async def request() -> str:
        with llm.queue.gives_way(when):
            return await reply(llm, text)

    return asyncio.ensure_future(request())


async def test_requests_beyond_the_slots_wait_their_turn_first_come_first_served() -> None:
    model = SlowModel()
    llm = QueuedLLM(model, LLMQueue(slots=1, max_wait_s=5))
    answers = await asyncio.gather(*(reply(llm, f"caller {i}") for i in range(4)))
    assert answers == ["one two three"] * 4
    assert model.most_at_once == 1 and model.served == [f"caller {i}" for i in range(4)]


async def test_two_slots_serve_two_at_once() -> None:
    model = SlowModel()
    llm = QueuedLLM(model, LLMQueue(slots=2, max_wait_s=5))
    await asyncio.gather(*(reply(llm, str(i)) for i in range(4)))
    assert model.most_at_once == 2


async def test_a_request_that_waits_too_long_is_told_the_model_is_busy() -> None:
    queue = LLMQueue(slots=1, max_wait_s=0.1)
    llm = QueuedLLM(SlowModel(pause_s=0.2), queue)
    first = asyncio.ensure_future(reply(llm, "first"))
    await asyncio.sleep(0.01)
    assert queue.busy and queue.running == 1
    started = time.monotonic()
    with pytest.raises(LLMBusy, match="busy with other callers") as refused:
        await reply(llm, "second")
    assert 0.09 < time.monotonic() - started < 0.5
    assert "llm_parallel" in refused.value.hint
    assert await first == "one two three"
    assert not queue.busy and queue.waiting == 0


async def test_an_abandoned_stream_and_a_cancelled_wait_free_their_places() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5)
    llm = QueuedLLM(SlowModel(), queue)
    stream = llm.stream_chat(HELLO)
    assert await stream.__anext__() == "one "  # type: ignore[attr-defined]
    waiting = asyncio.ensure_future(reply(llm, "waits"))
    await asyncio.sleep(0.01)
    assert queue.waiting == 1
    waiting.cancel()  # a barge-in while queued
    await asyncio.gather(waiting, return_exceptions=True)
    await stream.aclose()  # type: ignore[attr-defined]  # a barge-in mid-reply
    assert queue.running == 0 and queue.waiting == 0 and not queue.busy
    assert await reply(llm, "next") == "one two three"


async def test_a_warm_up_gives_its_slot_to_a_callers_turn_at_once() -> None:
    # A warm-up (its requests made inside gives_way) must never make a turn wait: the turn stops it.
    queue = LLMQueue(slots=1, max_wait_s=0.3)
    model = SlowModel(pause_s=0.5)  # a warm-up that would hold the slot for 1.5 s
    llm = QueuedLLM(model, queue)
    after_warm_up: list[str] = []

    async def warm_up() -> None:
        with queue.gives_way(), pytest.raises(LLMPreempted):
            await reply(llm, "warm-up")
        await asyncio.sleep(0)  # the task goes on: the preemption did not leave it cancelled
        after_warm_up.append("went on")

    warming = asyncio.ensure_future(warm_up())
    await asyncio.sleep(0.05)
    assert queue.running == 1
    started = time.monotonic()
    model.pause_s = 0.01
    assert await reply(llm, "turn") == "one two three"  # not LLMBusy after 0.3 s
    assert time.monotonic() - started < 0.2
    await warming
    assert after_warm_up == ["went on"] and queue.preempted == 1 and model.served == ["turn"]
    assert queue.running == 0 and queue.waiting == 0


async def test_a_warm_up_does_not_queue_and_a_cancelled_turn_is_not_a_preemption() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5)
    llm = QueuedLLM(SlowModel(pause_s=0.1), queue)
    turn = asyncio.ensure_future(reply(llm, "turn"))
    await asyncio.sleep(0.01)
    with queue.gives_way(), pytest.raises(LLMPreempted):  # busy: a warm-up would only delay turns
        await reply(llm, "warm-up")
    assert queue.waiting == 0
    turn.cancel()  # a barge-in: the turn's own task is cancelled, as before
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert queue.preempted == 0 and queue.running == 0


def test_health_counts_a_restart_and_how_long_it_took() -> None:
    health = EngineHealth()
    seen: list[tuple[str, EngineStatus]] = []
    health.subscribe(lambda engine, status: seen.append((engine, status)))
    report = health.reporter("llm")
    report("restarting", "llama.cpp exited: killed by signal 9 (SIGKILL)")
    report("restarting", "llama.cpp exited: killed by signal 9 (SIGKILL)")  # no change: told once
    assert health.problems() == ["llm restarting: llama.cpp exited: killed by signal 9 (SIGKILL)"]
    time.sleep(0.05)
    report("ok", "")
    assert health.problems() == []
    status = health.snapshot()["llm"]
    assert status.restarts == 1 and status.last_restart_s is not None and status.last_restart_s >= 0.05
    assert [(e, s.state) for e, s in seen] == [("llm", "restarting"), ("llm", "ok")]


def test_restart_backoff_and_exit_reasons() -> None:
    assert restart_delay(0, ran_for_s=120) == 0  # died after a long healthy run: at once
    assert [restart_delay(n, ran_for_s=1) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert describe_exit(-9) == "llama.cpp exited: killed by signal 9 (SIGKILL)"
    assert describe_exit(1) == "llama.cpp exited with status 1"


class StuckSpeech:
    """whisper's and Piper's stand-in: each call blocks its worker thread for `seconds`."""

    sample_rate = 16_000

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def transcribe(self, audio: Any, should_abort: Any = None) -> str:
        time.sleep(self.seconds)
        return "hello"

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[Any]:
        time.sleep(self.seconds)
        yield np.zeros(160, dtype=np.int16)

    def close(self) -> None:
        return None


async def test_a_worker_stuck_on_one_job_is_reported_until_the_job_ends() -> None:
    stuck = StuckSpeech(0.5)
    engines = Engines(stt=stuck, tts=stuck, llm=SlowModel(), vad_factory=lambda: None, worker_stuck_s=0.2)  # type: ignore[arg-type, return-value]
    try:
        transcription = asyncio.ensure_future(engines.transcribe(np.zeros(1600, dtype=np.float32)))
        await asyncio.sleep(0.35)
        assert engines.health.snapshot()["stt"].state == "failed", engines.health.problems()
        assert engines.health.problems() == ["stt failed: one job has run for 0.2 s: its worker is stuck"]
        assert await transcription == "hello"
        assert engines.health.problems() == []
        chunks = [c async for c in engines.synthesize("Hi.")]  # 0.5 s: reported, then ok again
        await asyncio.sleep(0.05)  # the worker's job ends just after its last chunk
        assert len(chunks) == 1 and engines.health.snapshot()["tts"].restarts == 1
    finally:
        await engines.aclose()


async def test_a_spare_slot_serves_a_warm_up_beside_a_caller_until_another_caller_waits() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    model = SlowModel(pause_s=0.2)
    llm = QueuedLLM(model, queue)
    first = asyncio.ensure_future(reply(llm, "first caller"))
    await asyncio.sleep(0.01)

    drafting = giving_way(llm, "draft")
    await asyncio.sleep(0.01)
    assert queue.running == 1 and queue.spare_running == 1 and model.running == 2  # side by side
    second = asyncio.ensure_future(reply(llm, "second caller"))  # has to wait: the draft stops
    with pytest.raises(LLMPreempted):
        await drafting
    assert await first == await second == "one two three"
    assert queue.preempted == 1 and queue.spare_running == 0 and queue.running == 0
    assert model.served == ["first caller", "second caller"]


async def test_a_kept_draft_becomes_a_callers_request_and_is_not_stopped() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    llm = QueuedLLM(SlowModel(pause_s=0.1), queue)

    drafting = giving_way(llm, "draft")
    await asyncio.sleep(0.01)
    assert queue.spare_running == 1
    assert await queue.keep(drafting)  # adopted as the answer: it now holds the callers' slot
    assert queue.spare_running == 0 and queue.running == 1 and queue.busy
    other = asyncio.ensure_future(reply(llm, "other caller"))  # waits its turn, stops nothing
    assert await drafting == "one two three"
    assert await other == "one two three" and queue.preempted == 0
    assert queue.running == 0 and queue.spare_running == 0 and not queue.busy


async def test_a_draft_is_not_kept_when_the_callers_slot_is_taken() -> None:
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    llm = QueuedLLM(SlowModel(pause_s=0.1), queue)
    caller = asyncio.ensure_future(reply(llm, "caller"))
    await asyncio.sleep(0.01)

    drafting = giving_way(llm, "draft")
    await asyncio.sleep(0.01)
    assert not await queue.keep(drafting)  # its turn would have to wait: the draft stays a draft
    drafting.cancel()
    await asyncio.gather(drafting, caller, return_exceptions=True)
    assert queue.running == 0 and queue.spare_running == 0


async def test_a_warm_up_stops_when_any_callers_request_starts_and_is_not_started_beside_one() -> None:
    # A warm-up only helps an idle LLM: beside a caller's request it would compete for the cores.
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    llm = QueuedLLM(SlowModel(pause_s=0.2), queue)

    warming = giving_way(llm, "warm-up", "always")
    await asyncio.sleep(0.01)
    assert queue.spare_running == 1 and queue.running == 0
    turn = asyncio.ensure_future(reply(llm, "turn"))  # a free slot: it does not wait, the warm-up stops anyway
    with pytest.raises(LLMPreempted):
        await warming
    with pytest.raises(LLMPreempted):
        await giving_way(llm, "warm-up", "always")  # not beside a running caller either
    assert await turn == "one two three" and queue.spare_running == 0


async def test_a_warm_up_on_the_callers_slot_does_not_make_a_caller_look_queued() -> None:
    # The app and the caller's feed show "waiting for the LLM" (LLMQueued) only for a real wait.
    queue = LLMQueue(slots=1, max_wait_s=5, spare=0)
    llm = QueuedLLM(SlowModel(pause_s=0.2), queue)

    warming = giving_way(llm, "warm-up", "always")
    await asyncio.sleep(0.01)
    assert queue.busy and not queue.callers_would_wait
    turn = asyncio.ensure_future(reply(llm, "turn"))
    await asyncio.sleep(0.01)
    assert queue.callers_would_wait  # now a caller holds the slot
    await asyncio.gather(warming, turn, return_exceptions=True)


class ClosingModel(SlowModel):
    """A stream that takes a few loop steps to close once stopped, as an HTTP response does."""

    async def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[str]:
        try:
            async for word in super().stream_chat(messages, **kwargs):
                yield word
        finally:
            await asyncio.sleep(0.02)


async def test_work_cancelled_through_the_queue_frees_its_slots_for_work_started_in_the_same_step() -> None:
    # The caller's next pause drops the work started at the last one and starts new work at once: the
    # new requests must find the slots free, not wait for the old streams to close.
    queue = LLMQueue(slots=1, max_wait_s=5, spare=1)
    model = ClosingModel(pause_s=0.1)
    llm = QueuedLLM(model, queue)
    old = [giving_way(llm, "old reply"), giving_way(llm, "old prefix")]
    await asyncio.sleep(0.01)
    assert queue.running == 1 and queue.spare_running == 1 and queue.busy

    for task in old:
        queue.cancel(task)  # type: ignore[arg-type]
    new = [giving_way(llm, "new reply"), giving_way(llm, "new prefix")]
    assert await asyncio.gather(*new) == ["one two three"] * 2
    assert all(task.cancelled() for task in old) and queue.preempted == 0
    assert queue.running == 0 and queue.spare_running == 0

    # The same without the queue's cancel: the slots are held while the streams close, and the new work gives way.
    old = [giving_way(llm, "old reply"), giving_way(llm, "old prefix")]
    await asyncio.sleep(0.01)
    for task in old:
        task.cancel()
    new = [giving_way(llm, "new reply"), giving_way(llm, "new prefix")]
    results = await asyncio.gather(*new, return_exceptions=True)
    assert any(isinstance(r, LLMPreempted) for r in results), results
