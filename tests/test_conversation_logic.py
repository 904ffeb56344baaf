"""The conversation's turn logic on scripted engines (tests/fake_engines.py): barge-in, tool waits,
hang-up mid-answer, endpointing. Fast and deterministic; the caller is synthetic 48 kHz audio played
in real time into the listener (no WebRTC), and the agent's track is pulled like a peer would.
The same behaviour on the real engines and real calls: test_conversation_barge_in.py, test_voice_loop.py,
test_responder_tools.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from platform_core.audio import frame_to_mono
from platform_core.bus import EventBus
from platform_core.config import PlatformConfig
from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.errors import LLMError
from platform_core.engines.llm.queue import LLMQueue
from platform_core.engines.runner import Engines
from platform_core.events import (
    AgentSpeakingChanged,
    AgentTextDelta,
    ConversationStateChanged,
    Event,
    MetricMeasured,
    TurnCompleted,
    TurnStarted,
    VadStateChanged,
)
from platform_core.pipeline.conversation import Conversation
from platform_core.pipeline.responder import FILLER_TEXT, TOOL_FAILED_TEXT
from platform_core.pipeline.tools import NoTools, ToolOutcome, ToolRouter, ToolSpec
from platform_core.transport.wav_source import PacedAudioTrack
from tests.agents_helpers import wait_until
from tests.fake_engines import LoudnessVad, ScriptedLlm, ScriptedStt, WordTts, scripted_engines, silence, tone

E = TypeVar("E", bound=Event)

QUESTION, STOP = 8000, 16000  # amplitudes of the caller's two utterances (ScriptedStt's keys)
TEXTS = {QUESTION: "Tell me a story.", STOP: "Stop."}
STORY = (
    "Once upon a time a dragon lived in a cave by the sea. Every night it sang to the stars. "
    "A brave knight heard the song and came to listen."
)


def utterance(amplitude: int, speech_s: float = 0.6) -> np.ndarray:
    """Speech then enough silence to end the turn."""
    return np.concatenate([tone(speech_s, amplitude), silence(0.6)])


def config(**voice: Any) -> PlatformConfig:
    cfg = PlatformConfig()
    cfg.engines.llm = "ollama"  # not "embedded": no prompt-cache warm-up, the scripted LLM has no cache
    for name, value in voice.items():
        setattr(cfg.voice, name, value)
    return cfg


@dataclass
class LiveCall:
    """A conversation with a synthetic caller, everything it published and everything the agent sent."""

    conversation: Conversation
    mic: PacedAudioTrack
    events: list[tuple[float, Event]] = field(default_factory=list)  # (monotonic time received, event)
    agent_audio: list[tuple[float, bool]] = field(default_factory=list)  # (pulled at, audible)

    def published(self, kind: type[E], **match: Any) -> list[E]:
        return [e for _, e in self.events if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())]

    def time_of(self, event: Event) -> float:
        return next(t for t, e in self.events if e is event)

    async def wait_for(self, kind: type[E], timeout: float = 10.0, **match: Any) -> E:
        deadline = time.monotonic() + timeout
        while not (found := self.published(kind, **match)):
            assert time.monotonic() < deadline, f"no {kind.__name__} {match} within {timeout} s"
            await asyncio.sleep(0.01)
        return found[0]

    async def pull_agent_audio(self) -> None:
        while True:
            try:
                frame = await self.conversation.track.recv()
            except MediaStreamError:
                return
            self.agent_audio.append((time.monotonic(), bool(np.abs(frame_to_mono(frame)).max() > 0)))


@asynccontextmanager
async def live_call(
    engines: Engines, cfg: PlatformConfig | None = None, router: ToolRouter | None = None, agent_id: str | None = None
) -> AsyncIterator[LiveCall]:
    bus = EventBus()
    bus.bind_loop(asyncio.get_running_loop())
    conversation = Conversation(
        conversation_id="conv_logic",
        agent_id=agent_id,
        customer_id="default",
        engines=engines,
        router=router or NoTools(),
        bus=bus,
        config=cfg or config(),
    )
    call = LiveCall(conversation, PacedAudioTrack())
    bus.subscribe(lambda event: call.events.append((time.monotonic(), event)))
    conversation.attach_caller(call.mic)
    ear = asyncio.ensure_future(call.pull_agent_audio())
    try:
        yield call
    finally:
        await conversation.close()
        call.mic.stop()
        await asyncio.wait_for(ear, 2)


# --- endpointing ------------------------------------------------------------------------------------


async def test_the_transcription_started_at_the_pause_is_the_turns() -> None:
    stt = ScriptedStt(TEXTS)
    async with live_call(scripted_engines(stt)) as call:
        call.mic.say(utterance(QUESTION))
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    assert completed.user_text == "Tell me a story." and completed.agent_text == "All right."
    assert stt.calls == ["final"], "the turn reused the transcription started at the pause"


async def test_speech_after_a_pause_is_transcribed_again_as_one_turn() -> None:
    stt = ScriptedStt(TEXTS)
    speech = np.concatenate([tone(0.5, QUESTION), silence(0.18), utterance(QUESTION, 0.5)])
    async with live_call(scripted_engines(stt)) as call:
        call.mic.say(speech)
        completed = await call.wait_for(TurnCompleted, turn_id=1)
        await asyncio.sleep(0.3)
        assert len(call.published(TurnStarted)) == 1
    assert completed.user_text == "Tell me a story."
    finals = [kind for kind in stt.calls if kind == "final"]  # (a partial may run while the caller speaks)
    assert finals == ["final", "final"], "the pause's transcription was dropped when the caller went on"


async def test_a_click_is_not_a_turn() -> None:
    stt = ScriptedStt(TEXTS)
    async with live_call(scripted_engines(stt)) as call:
        call.mic.say(np.concatenate([tone(0.05, QUESTION), silence(0.8)]))
        await asyncio.sleep(1.2)
        assert not call.published(TurnStarted) and not call.published(VadStateChanged, speaking=True)
        assert stt.calls == []
        call.mic.say(utterance(QUESTION))  # the next real utterance is turn 1
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    assert completed.user_text == "Tell me a story."


# --- barge-in ---------------------------------------------------------------------------------------


async def test_barge_in_cuts_the_audio_and_keeps_only_the_played_words() -> None:
    stt = ScriptedStt(TEXTS)
    llm = ScriptedLlm(reply=lambda messages: STORY if messages[-1].content == TEXTS[QUESTION] else "Stopped.")
    async with live_call(scripted_engines(stt, llm)) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.5)
        call.mic.say(utterance(STOP, 1.0))  # long enough to interrupt (interrupt_speech_s)
        cut = await call.wait_for(TurnCompleted, turn_id=1)
        second = await call.wait_for(TurnCompleted, turn_id=2)
        history = list(call.conversation.history)
        delay = call.published(MetricMeasured, name="barge_in_delay")
        cut_at, second_started_at = call.time_of(cut), call.time_of(call.published(TurnStarted, turn_id=2)[0])
    assert cut.interrupted and not second.interrupted
    heard, story = cut.agent_text.split(), STORY.split()
    assert 0 < len(heard) < len(story) and story[: len(heard)] == heard
    assert history == [
        ChatMessage("user", TEXTS[QUESTION]),
        ChatMessage("assistant", cut.agent_text),
        ChatMessage("user", TEXTS[STOP]),
        ChatMessage("assistant", "Stopped."),
    ]
    assert len(delay) == 1 and 0 < delay[0].value < 0.3 and cut.metrics["barge_in_delay"] == delay[0].value
    after_cut = [audible for t, audible in call.agent_audio if cut_at + 0.05 < t < second_started_at]
    assert after_cut and not any(after_cut), "the agent's audio stopped at the cut"


async def test_a_barge_in_between_two_clauses_is_measured() -> None:
    """Synthesis slower than playback leaves the queue empty between clauses; the caller speaking
    then still interrupts the answer, and the delay is measured (it used to be missing, read as 0)."""
    stt = ScriptedStt(TEXTS)
    llm = ScriptedLlm(
        reply=lambda messages: (
            "Hello there. How are you? Fine, thanks." if messages[-1].content == TEXTS[QUESTION] else "Stopped."
        )
    )
    tts = WordTts(delay_s=1.0)  # two words (0.3 s of audio) take 1 s to synthesize
    async with live_call(scripted_engines(stt, llm, tts)) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await call.wait_for(AgentSpeakingChanged, speaking=False)  # the first clause played; the next is not ready
        call.mic.say(utterance(STOP, 1.0))  # long enough to interrupt (interrupt_speech_s)
        cut = await call.wait_for(TurnCompleted, turn_id=1)
    assert cut.interrupted and cut.agent_text == "Hello there."
    delay = cut.metrics.get("barge_in_delay")
    assert delay is not None and 0 < delay < 0.3, cut.metrics


# --- tools ------------------------------------------------------------------------------------------

HOURS = ToolSpec("opening_hours", "When the shop is open.", {"type": "object", "properties": {}})


@dataclass
class ScriptedRouter:
    """The agent gateway's stand-in (a ToolRouter): the real one needs an agent process on a
    websocket; here the test decides when the agent's tools register and how long a call takes."""

    registered_after_s: float = 0.0
    call_s: float = 0.0
    status: Literal["done", "error", "timeout"] = "done"
    calls: list[str] = field(default_factory=list)
    cancelled: list[int | None] = field(default_factory=list)  # turn ids the conversation cancelled
    finished: list[str] = field(default_factory=list)  # "done" or "cancelled", per call that ended
    _started_at: float = field(default_factory=time.monotonic)

    async def conversation_started(self, conversation_id: str, agent_id: str | None, customer_id: str) -> None:
        self._started_at = time.monotonic()

    async def conversation_ended(self, conversation_id: str) -> None:
        return None

    def tools_for(self, conversation_id: str) -> list[ToolSpec]:
        return [HOURS] if time.monotonic() - self._started_at >= self.registered_after_s else []

    def has_agents(self, conversation_id: str) -> bool:
        return True

    async def wait_for_tools(self, conversation_id: str, timeout: float) -> list[ToolSpec]:
        deadline = time.monotonic() + timeout
        while not self.tools_for(conversation_id) and time.monotonic() < deadline:  # noqa: ASYNC110 (the test sets them)
            await asyncio.sleep(0.01)
        return self.tools_for(conversation_id)

    async def call_tool(
        self, conversation_id: str, name: str, arguments: dict[str, Any], *, turn_id: int | None = None
    ) -> ToolOutcome:
        self.calls.append(name)
        try:
            await asyncio.sleep(self.call_s)
        except asyncio.CancelledError:
            self.finished.append("cancelled")
            raise
        self.finished.append("done")
        if self.status != "done":
            return ToolOutcome(
                f"call_{len(self.calls)}", name, arguments, self.status, error="the shop's system is down"
            )
        return ToolOutcome(f"call_{len(self.calls)}", name, arguments, "done", result="9 to 5")

    def cancel_tool_calls(self, conversation_id: str, *, turn_id: int | None = None, reason: str = "") -> None:
        self.cancelled.append(turn_id)


def hours_llm() -> ScriptedLlm:
    def choose(messages: Sequence[ChatMessage]) -> str:
        return '{"tool": "opening_hours", "arguments": {}}'

    return ScriptedLlm(reply=lambda messages: "We are open from nine to five.", tool_choice=choose)


async def test_the_first_turn_waits_for_the_agents_tools() -> None:
    router = ScriptedRouter(registered_after_s=0.5)  # well within FIRST_TOOLS_WAIT_S
    async with live_call(scripted_engines(ScriptedStt(TEXTS), hours_llm()), router=router, agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        completed = await call.wait_for(TurnCompleted, turn_id=1)
        history = list(call.conversation.history)
    assert router.calls == ["opening_hours"]
    assert ChatMessage("tool", '{"tool": "opening_hours", "result": "9 to 5"}') in history
    assert completed.agent_text == "We are open from nine to five."


async def test_a_failed_tool_choice_pass_answers_without_tools() -> None:
    def refuse(messages: Sequence[ChatMessage]) -> str:  # as llama-server answers a schema it cannot compile
        raise LLMError("LLM server error HTTP 400: JSON schema error: unrecognized type strin")

    llm = ScriptedLlm(reply=lambda messages: "I cannot look that up now.", tool_choice=refuse)
    router = ScriptedRouter()
    async with live_call(scripted_engines(ScriptedStt(TEXTS), llm), router=router, agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    assert router.calls == [] and completed.agent_text == "I cannot look that up now."


@pytest.mark.parametrize(("call_s", "filler"), [(0.8, True), (0.0, False)], ids=["slow tool", "fast tool"])
async def test_a_slow_tool_gets_a_filler(call_s: float, filler: bool) -> None:
    router = ScriptedRouter(call_s=call_s)
    cfg = config(tool_filler_after_s=0.3)
    async with live_call(scripted_engines(ScriptedStt(TEXTS), hours_llm()), cfg, router, agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    expected = "We are open from nine to five."
    assert completed.agent_text == (f"{FILLER_TEXT} {expected}" if filler else expected)
    metrics = completed.metrics
    said = [e for _, e in call.events if isinstance(e, AgentTextDelta) and e.turn_id == 1]
    assert [d.filler for d in said] == ([True] if filler else []) + [False] * (len(said) - filler)
    if filler:  # the filler is the turn's first audio; the answer comes after the tool's result
        assert metrics["e2e_latency"] < call_s < metrics["answer_latency"], metrics
    else:
        assert metrics["answer_latency"] == metrics["e2e_latency"], metrics


@pytest.mark.parametrize("status", ["error", "timeout"])
async def test_a_failed_tool_is_admitted_in_fixed_words(status: Literal["error", "timeout"]) -> None:
    router = ScriptedRouter(status=status)
    llm = hours_llm()
    async with live_call(scripted_engines(ScriptedStt(TEXTS), llm), router=router, agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    assert router.calls == ["opening_hours"]
    assert completed.agent_text == TOOL_FAILED_TEXT[status], "the model never gets to invent the hours"
    assert "nine" not in completed.agent_text


# --- cancellation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("barge_in_at_s", [0.1, 0.6], ids=["before the filler", "during the filler"])
async def test_an_interrupted_turn_cancels_its_tool_call(barge_in_at_s: float) -> None:
    """The turn's call is cancelled through the router and its task with the turn, in the first
    moments (the responder waits for it beside the filler timer) as during the filler."""
    router = ScriptedRouter(call_s=3.0)
    cfg = config(tool_filler_after_s=0.3)
    async with live_call(scripted_engines(ScriptedStt(TEXTS), hours_llm()), cfg, router, agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        await wait_until(lambda: router.calls == ["opening_hours"])
        await asyncio.sleep(barge_in_at_s)
        if barge_in_at_s > 0.3:
            await call.wait_for(AgentSpeakingChanged, speaking=True)  # the filler is playing
        call.conversation.submit_text("Never mind.")
        first = await call.wait_for(TurnCompleted, turn_id=1)
        await wait_until(lambda: router.finished)
        finished = list(router.finished)  # the second turn's own call is still running (3 s)
    assert first.interrupted and router.cancelled[0] == 1
    assert finished == ["cancelled"], "the call's task ended with its turn, not 3 s later as done"


async def test_hanging_up_mid_answer_cancels_it() -> None:
    llm = ScriptedLlm(reply=lambda messages: STORY, token_s=0.15)
    tts = WordTts()
    async with live_call(scripted_engines(ScriptedStt(TEXTS), llm, tts)) as call:
        call.conversation.submit_text("Tell me a story.")
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await call.conversation.close("hung up")
        spoken = list(tts.spoken)
        await asyncio.sleep(0.5)
        assert tts.spoken == spoken, "nothing more was synthesized"
        completed = await call.wait_for(TurnCompleted, turn_id=1)
        ended = await call.wait_for(ConversationStateChanged, state="ended")
        after = [e for _, e in call.events[[e for _, e in call.events].index(ended) + 1 :]]
    assert completed.interrupted and STORY.startswith(completed.agent_text)
    assert llm.abandoned == 1, "the LLM's stream was closed mid-answer"
    assert ended.reason == "hung up" and not after, after


async def test_the_replys_prompt_is_processed_beside_the_tool_choice() -> None:
    llm = hours_llm()
    engines = Engines(
        stt=ScriptedStt(TEXTS), tts=WordTts(), llm=llm, vad_factory=LoudnessVad, llm_queue=LLMQueue(slots=1, spare=1)
    )
    cfg = config()
    cfg.engines.llm = "embedded"  # the embedded llama.cpp's spare slot is what the reply's prompt uses
    async with live_call(engines, cfg, router=ScriptedRouter(), agent_id="shop") as call:
        call.conversation.submit_text("When are you open?")
        completed = await call.wait_for(TurnCompleted, turn_id=1)
    question = ChatMessage("user", "When are you open?")
    system = ChatMessage("system", cfg.profile_for("shop").system_prompt)
    replies = [prompt for prompt in llm.prompts if prompt[0] == system and question in prompt]
    assert len(replies) == 2, "the reply's prompt beside the tool choice, then the reply after the tool's result"
    beside, answer = replies
    assert beside[-1] == ChatMessage("user", "When are you open?")
    assert answer[: len(beside)] == beside and answer[-1].role == "tool", "the reply starts from what was processed"
    assert completed.agent_text == "We are open from nine to five."
