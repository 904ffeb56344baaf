"""Barge-in: the caller talks over the agent; the agent stops at once and remembers only what was heard."""

from __future__ import annotations

import asyncio

import pytest

from platform_core.config import PlatformConfig
from platform_core.events import AgentSpeakingChanged, AgentTextDelta, Event, MetricMeasured, TurnCompleted
from platform_core.platform import Platform
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import PacedAudioTrack
from tests.speech import speak

pytestmark = pytest.mark.slow


async def test_caller_interrupts_a_long_answer() -> None:
    config = PlatformConfig()
    config.server.port = 0
    config.default_agent.system_prompt = "You are a storyteller. Tell long, detailed stories."
    platform = Platform(config)
    await platform.start()
    mic = PacedAudioTrack()  # silent until the test makes it say something
    client = CallClient(platform.url, source=mic, api_key=config.server.api_key)
    generated: list[str] = []
    platform.bus.subscribe(
        lambda e: generated.append(e.text) if isinstance(e, AgentTextDelta) and e.turn_id == 1 else None
    )
    try:
        async with platform.bus.stream() as events:
            conversation_id = await client.connect()

            def mine(kind: type[Event]):  # type: ignore[no-untyped-def]
                return lambda e: isinstance(e, kind) and e.conversation_id == conversation_id

            mic.say(speak("Please tell me a long story about a dragon and a brave knight."))
            await events.next_matching(lambda e: mine(AgentSpeakingChanged)(e) and e.speaking, timeout=90)
            await asyncio.sleep(0.4)  # let the caller hear the start of the first clause
            mic.say(speak("Stop. What time is it?"))
            barge_in_delay = None
            while True:
                event = await events.next_matching(
                    lambda e: mine(TurnCompleted)(e) or mine(MetricMeasured)(e), timeout=30
                )
                if isinstance(event, MetricMeasured) and event.name == "barge_in_delay":
                    barge_in_delay = event.value
                if isinstance(event, TurnCompleted) and event.turn_id == 1:
                    completed = event
                    break
        assert completed.interrupted
        assert barge_in_delay is not None, "the agent was not speaking when the caller interrupted"
        print(f"barge-in: agent audio cut {barge_in_delay * 1000:.0f} ms after the caller's speech arrived")
        assert barge_in_delay <= 0.2, f"agent audio stopped {barge_in_delay * 1000:.0f} ms after the caller spoke"
        heard = completed.agent_text.split()
        assert heard, "some of the answer was played before the interruption"
        conversation = platform.calls[conversation_id].conversation
        assistant = [m.content for m in conversation.history if m.role == "assistant"]
        assert assistant == [completed.agent_text], "the history keeps exactly the words that were played"
        # The played words are the start of the answer, and not all of it.
        answer = " ".join(generated).split()
        assert answer[: len(heard)] == heard
        assert len(heard) < len(answer)
    finally:
        await client.hangup()
        await platform.stop()
