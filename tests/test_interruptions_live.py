"""Interruptions that need a person, on the real engines over a real WebRTC call (Piper speaks the
caller): backchannels and a noise burst over a long answer pause it and it resumes, is played to the end
and no turn answers them; a full sentence over the answer still stops it and is answered; the greeting is
interrupted by a real sentence and the history keeps only its heard words."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pytest

from platform_core.config import PlatformConfig
from platform_core.events import (
    AgentInterrupted,
    AgentPaused,
    AgentResumed,
    AgentSpeakingChanged,
    AgentTextDelta,
    Event,
    MetricMeasured,
    TurnCompleted,
    TurnStarted,
)
from platform_core.platform import Platform
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import PacedAudioTrack
from tests.speech import speak
from tests.wer import wer

E = TypeVar("E", bound=Event)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

STORY_PROMPT = "You are a storyteller. Tell long, detailed stories."
GREETING = (
    "Hello and welcome to the Seaside Hotel. I can help you book a room, tell you about our restaurant, "
    "our spa and the beach, and answer any question about your stay with us."
)


def noise_burst(seconds: float = 0.15, amplitude: int = 9000, rate: int = 48_000) -> np.ndarray:
    """A cough-like burst: white noise with a sharp attack and a fast decay."""
    n = int(seconds * rate)
    envelope = np.exp(-np.arange(n) / (n / 4))
    rng = np.random.default_rng(11)
    return (rng.standard_normal(n) * amplitude * envelope).clip(-32000, 32000).astype(np.int16)


@dataclass
class LiveCall:
    platform: Platform
    mic: PacedAudioTrack
    conversation_id: str
    events: list[Event] = field(default_factory=list)

    def mine(self, kind: type[E], **match: object) -> list[E]:
        return [
            e
            for e in self.events
            if isinstance(e, kind)
            and getattr(e, "conversation_id", None) == self.conversation_id
            and all(getattr(e, k) == v for k, v in match.items())
        ]

    async def wait_for(self, kind: type[E], timeout: float = 60, **match: object) -> E:
        deadline = time.monotonic() + timeout
        while not (found := self.mine(kind, **match)):
            assert time.monotonic() < deadline, f"no {kind.__name__} {match} within {timeout} s"
            await asyncio.sleep(0.02)
        return found[0]

    def generated(self, turn_id: int) -> str:
        return " ".join(e.text for e in self.mine(AgentTextDelta, turn_id=turn_id))


@asynccontextmanager
async def live_call(configure: Callable[[PlatformConfig], None]) -> AsyncIterator[LiveCall]:
    config = PlatformConfig()
    config.server.port = 0
    configure(config)
    platform = Platform(config)
    await platform.start()
    mic = PacedAudioTrack()  # silent until the test makes it say something
    client = CallClient(platform.url, source=mic, api_key=config.server.api_key)
    events: list[Event] = []
    platform.bus.subscribe(events.append)
    try:
        conversation_id = await client.connect()
        yield LiveCall(platform, mic, conversation_id, events)
    finally:
        await client.hangup()
        await platform.stop()


def storyteller(config: PlatformConfig) -> None:
    config.default_agent.system_prompt = STORY_PROMPT
    config.voice.max_reply_tokens = 70  # ~15 s of speech: long enough to talk over, short enough to finish


async def test_backchannels_and_a_cough_do_not_stop_the_answer() -> None:
    async with live_call(storyteller) as call:
        call.mic.say(speak("Please tell me a long story about a dragon and a brave knight."))
        await call.wait_for(AgentSpeakingChanged, speaking=True, timeout=90)
        for sound in (speak("Mm-hmm."), speak("Okay."), noise_burst(), speak("Right.")):
            await asyncio.sleep(1.5)  # the answer goes on between them
            call.mic.say(sound)
        done = await call.wait_for(TurnCompleted, turn_id=1, timeout=120)
        await asyncio.sleep(1.0)  # a turn answering a backchannel would have started by now
        conversation = call.platform.calls[call.conversation_id].conversation
        history = [(m.role, m.content) for m in conversation.history]
        paused, resumed = call.mine(AgentPaused), call.mine(AgentResumed)
        print(f"paused {len(paused)}x, resumed {len(resumed)}x:", [(e.speech_s, e.paused_s) for e in resumed])
        assert not done.interrupted, "a backchannel stopped the answer"
        assert not call.mine(AgentInterrupted)
        assert done.agent_text == call.generated(1), "the answer was played to its end"
        assert len(call.mine(TurnStarted)) == 1, "no turn answers a backchannel"
        assert len(resumed) >= 3, "each spoken backchannel paused the agent, and it resumed"
        assert len(paused) == len(resumed)
        assert history[-1] == ("assistant", done.agent_text)


async def test_a_full_sentence_over_the_answer_stops_it_and_is_answered() -> None:
    async with live_call(storyteller) as call:
        call.mic.say(speak("Please tell me a long story about a dragon and a brave knight."))
        await call.wait_for(AgentSpeakingChanged, speaking=True, timeout=90)
        await asyncio.sleep(1.0)
        said = "Wait, tell me about the weather in Paris instead."
        call.mic.say(speak(said))
        interrupted = await call.wait_for(AgentInterrupted, timeout=30)
        cut = await call.wait_for(TurnCompleted, turn_id=1, timeout=30)
        second = await call.wait_for(TurnCompleted, turn_id=2, timeout=120)
        delays = call.mine(MetricMeasured, name="barge_in_delay")
        conversation = call.platform.calls[call.conversation_id].conversation
        assistant = [m.content for m in conversation.history if m.role == "assistant"]
    assert interrupted.turn_id == 1 and interrupted.speech_s >= 0.6
    assert cut.interrupted
    heard, answer = cut.agent_text.split(), call.generated(1).split()
    # A prefix of the answer (under load the LLM may not have written more than the words heard yet).
    assert heard and heard == answer[: len(heard)] and len(heard) <= len(answer)
    assert assistant[0] == cut.agent_text, "the history keeps exactly the words that were played"
    assert len(delays) == 1
    delay = delays[0].value
    print(f"barge-in: agent silent {delay * 1000:.0f} ms after the caller's speech arrived")
    assert delay <= 0.2
    assert wer(said, second.user_text) <= 0.35, second.user_text
    assert second.agent_text and not second.interrupted


async def test_the_greeting_is_interrupted_by_a_real_sentence() -> None:
    def hotel(config: PlatformConfig) -> None:
        config.default_agent.greeting = GREETING

    async with live_call(hotel) as call:
        call.mic.say(np.zeros(9600, np.int16))  # the caller's media flows: the greeting starts
        await call.wait_for(AgentSpeakingChanged, speaking=True, timeout=60)
        await asyncio.sleep(1.5)
        said = "What time is breakfast served?"
        call.mic.say(speak(said))
        interrupted = await call.wait_for(AgentInterrupted, timeout=30)
        answered = await call.wait_for(TurnCompleted, turn_id=1, timeout=120)
        conversation = call.platform.calls[call.conversation_id].conversation
        history = [(m.role, m.content) for m in conversation.history]
    assert interrupted.turn_id == 0
    role, greeted = history[0]
    heard = greeted.split()
    assert role == "assistant" and 0 < len(heard) < len(GREETING.split()), history
    assert heard == GREETING.split()[: len(heard)], "the history keeps the greeting's heard words"
    assert history[1][0] == "user" and wer(said, history[1][1]) <= 0.35, history
    assert answered.agent_text and not answered.interrupted
