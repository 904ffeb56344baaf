"""False interruptions on scripted engines (tests/fake_engines.py, as test_conversation_logic.py): a
backchannel or a click over the answer pauses it and it resumes with nothing lost; enough speech, or
enough words, interrupts it; the greeting is interruptible. The same on the real engines and real
WebRTC calls with Piper's speech: test_interruptions_live.py."""

from __future__ import annotations

import asyncio

import numpy as np

from platform_core.engines.base import ChatMessage
from platform_core.events import (
    AgentInterrupted,
    AgentPaused,
    AgentResumed,
    AgentSpeakingChanged,
    TurnCompleted,
    TurnStarted,
)
from tests.fake_engines import ScriptedLlm, ScriptedStt, scripted_engines, silence, tone
from tests.test_conversation_logic import QUESTION, STOP, STORY, TEXTS, config, live_call, utterance

GREETING = "Welcome to the seaside hotel, where every room looks out over the quiet bay and the lighthouse."


def story_llm() -> ScriptedLlm:
    return ScriptedLlm(reply=lambda messages: STORY if messages[-1].content == TEXTS[QUESTION] else "Stopped.")


async def test_a_backchannel_pauses_the_answer_which_resumes_and_plays_to_the_end() -> None:
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm())) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.8)
        call.mic.say(utterance(STOP, 0.35))  # "mm-hmm": speech, but shorter than interrupt_speech_s
        paused = await call.wait_for(AgentPaused)
        resumed = await call.wait_for(AgentResumed)
        done = await call.wait_for(TurnCompleted, turn_id=1, timeout=15)
        await asyncio.sleep(0.3)
        turns_started = len(call.published(TurnStarted))
        paused_at, resumed_at = call.time_of(paused), call.time_of(resumed)
        during = [audible for t, audible in call.agent_audio if paused_at + 0.05 < t < resumed_at]
        after = [audible for t, audible in call.agent_audio if resumed_at + 0.05 < t < call.time_of(done)]
        history = list(call.conversation.history)
    assert paused.turn_id == 1 and resumed.turn_id == 1 and resumed.reason == "speech ended"
    assert 0.3 <= resumed.speech_s < 0.6 and resumed.paused_s > 0.3
    assert not call.published(AgentInterrupted)
    assert during and not any(during), "the agent was silent while the caller's sound was judged"
    assert any(after), "the answer went on after the resume"
    assert not done.interrupted and done.agent_text == STORY, "nothing of the answer was lost"
    assert turns_started == 1, "the backchannel was not answered as a turn"
    assert history == [ChatMessage("user", TEXTS[QUESTION]), ChatMessage("assistant", STORY)]


async def test_a_click_over_the_answer_is_a_false_interruption() -> None:
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm())) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.5)
        call.mic.say(np.concatenate([tone(0.08, STOP), silence(0.6)]))  # too short even for a turn
        resumed = await call.wait_for(AgentResumed)
        done = await call.wait_for(TurnCompleted, turn_id=1, timeout=15)
    assert resumed.speech_s < 0.15
    assert not done.interrupted and done.agent_text == STORY
    assert len(call.published(TurnStarted)) == 1


async def test_enough_speech_interrupts_and_is_answered() -> None:
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm())) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.5)
        call.mic.say(utterance(STOP, 1.0))
        interrupted = await call.wait_for(AgentInterrupted)
        cut = await call.wait_for(TurnCompleted, turn_id=1)
        second = await call.wait_for(TurnCompleted, turn_id=2)
        paused = call.published(AgentPaused)[0]
    assert interrupted.turn_id == 1 and abs(interrupted.speech_s - 0.6) < 0.05 and interrupted.words == 0
    assert interrupted.paused_s >= 0.45, "the interruption is decided after the speech, not at its onset"
    assert cut.interrupted and 0 < len(cut.agent_text.split()) < len(STORY.split())
    # The audio stopped at the pause: barge_in_delay is the caller's onset to silence, not to the decision.
    delay = cut.metrics["barge_in_delay"]
    assert delay is not None and 0 < delay < 0.3
    assert call.time_of(paused) < call.time_of(interrupted)
    assert second.user_text == TEXTS[STOP] and second.agent_text == "Stopped."


async def test_min_words_keeps_a_long_one_word_sound_from_interrupting() -> None:
    """With `interrupt_min_words` = 2 a second of one word ("Stop.", scripted) is not an interruption;
    the words are known once the utterance ends (its transcript), and it is not answered."""
    cfg = config(interrupt_min_words=2)
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm()), cfg) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.5)
        call.mic.say(utterance(STOP, 1.0))
        resumed = await call.wait_for(AgentResumed)
        done = await call.wait_for(TurnCompleted, turn_id=1, timeout=15)
    assert resumed.speech_s >= 0.9 and resumed.reason == "speech ended"
    assert not done.interrupted and done.agent_text == STORY
    assert len(call.published(TurnStarted)) == 1


async def test_undecided_speech_resumes_at_the_timeout() -> None:
    cfg = config(interrupt_min_words=5, false_interruption_timeout_s=0.8, partial_every_s=0.0)
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm()), cfg) as call:
        call.mic.say(utterance(QUESTION))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.5)
        call.mic.say(utterance(STOP, 2.0))  # goes on past the timeout, and never has 5 words
        resumed = await call.wait_for(AgentResumed)
        done = await call.wait_for(TurnCompleted, turn_id=1, timeout=15)
    assert resumed.reason == "timeout" and abs(resumed.paused_s - 0.8) < 0.1
    assert not done.interrupted and done.agent_text == STORY
    assert len(call.published(TurnStarted)) == 1, "the dismissed utterance was not answered"


async def test_the_greeting_is_interruptible_and_keeps_only_its_heard_words() -> None:
    cfg = config()
    cfg.default_agent.greeting = GREETING
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm()), cfg) as call:
        call.mic.say(silence(0.2))  # the caller's media is up: the call starts with the greeting
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.6)
        call.mic.say(utterance(QUESTION, 1.0))
        interrupted = await call.wait_for(AgentInterrupted)
        answer = await call.wait_for(TurnCompleted, turn_id=1, timeout=15)
        history = list(call.conversation.history)
    assert interrupted.turn_id == 0
    heard = history[0].content.split()
    assert history[0].role == "assistant" and 0 < len(heard) < len(GREETING.split())
    assert heard == GREETING.split()[: len(heard)]
    assert answer.user_text == TEXTS[QUESTION] and answer.agent_text == STORY and not answer.interrupted


async def test_a_backchannel_over_the_greeting_lets_it_finish() -> None:
    cfg = config()
    cfg.default_agent.greeting = GREETING
    async with live_call(scripted_engines(ScriptedStt(TEXTS), story_llm()), cfg) as call:
        call.mic.say(silence(0.2))
        await call.wait_for(AgentSpeakingChanged, speaking=True)
        await asyncio.sleep(0.6)
        call.mic.say(utterance(STOP, 0.3))
        resumed = await call.wait_for(AgentResumed)
        await call.wait_for(AgentSpeakingChanged, speaking=False, timeout=15)
        history = list(call.conversation.history)
    assert resumed.turn_id == 0 and not call.published(TurnStarted)
    assert history == [ChatMessage("assistant", GREETING)]
