"""One scenario as one real WebRTC call: the caller's turns played one after another.

Each turn is played once the previous answer has finished (the call is settled: input played out,
every started turn completed, the agent quiet), or, for a barge-in turn, a delay after an event of
the previous answer. Every event is kept with its arrival time; `results.py` sorts them into turns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from platform_core.audio import WEBRTC_RATE, Int16Array
from platform_core.audio_files import read_audio
from platform_core.calls import CallTracker
from platform_core.events import AgentSpeakingChanged, AgentTextDelta, Event, ToolCallUpdated, TurnStarted
from platform_core.qa.conditions import apply_conditions
from platform_core.qa.scenario import Scenario, Turn
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import PacedAudioTrack

Voice = Callable[[str], Awaitable[Int16Array]]  # text -> speech, int16 mono 48 kHz
INPUT_TAIL_S = 2.0  # the VAD needs its silence window after the last word to commit a turn
NO_TURN_GRACE_S = 4.0  # speech that started no turn by then was not heard as speech
_PAD_S = 0.3  # silence around synthesized speech, as a person breathes before and after


@dataclass
class TurnRecord:
    turn: Turn
    started_at: float  # time.monotonic() when the turn (its hold) began
    input_done_at: float | None = None
    ended_at: float | None = None
    timed_out: bool = False
    note: str = ""


@dataclass
class CallRecord:
    scenario: Scenario
    started_at: float
    conversation_id: str = ""
    turns: list[TurnRecord] = field(default_factory=list)
    tracker: CallTracker = field(default_factory=CallTracker)
    events: list[tuple[float, Event]] = field(default_factory=list)
    caller_audio: Int16Array = field(default_factory=lambda: np.zeros(0, np.int16))
    agent_audio: Int16Array = field(default_factory=lambda: np.zeros(0, np.int16))
    error: str | None = None  # the call could not be placed or broke off
    ended_reason: str = ""
    duration_s: float = 0.0


async def prepare_audio(turn: Turn, voice: Voice) -> Int16Array | None:
    """The caller's speech for a turn (48 kHz, conditions applied), or None for text and silence."""
    if turn.say is not None:
        speech = await voice(turn.say)
    elif turn.wav is not None:
        speech = await asyncio.to_thread(read_audio, turn.wav)
    else:
        return None
    pad = np.zeros(int(_PAD_S * WEBRTC_RATE), np.int16)
    speech = apply_conditions(np.concatenate([pad, speech, pad]), WEBRTC_RATE, turn.audio, seed=turn.index)
    return speech


class ScenarioCall:
    """Plays one scenario's turns into a call and records what happened."""

    def __init__(self, scenario: Scenario, url: str, api_key: str | None, on_event: Callable[[Event], None] | None):
        self.scenario = scenario
        self.source = PacedAudioTrack()
        self.record = CallRecord(scenario, started_at=time.monotonic())
        self._on_event = on_event
        self.client = CallClient(
            url,
            agent_id=scenario.agent_id,
            api_key=api_key,
            source=self.source,
            on_event=self._event,
            feed="no-levels",
        )

    def _event(self, event: Event) -> None:
        now = time.monotonic()
        self.record.tracker.on_event(event, now)
        self.record.events.append((now, event))
        if self._on_event is not None:
            self._on_event(event)

    async def run(self, audio: list[Int16Array | None]) -> CallRecord:
        """Place the call, play every turn, hang up; call errors are recorded, not raised."""
        record = self.record
        try:
            record.conversation_id = await self.client.connect()
            await self.client.wait_media()
            await self._play_turns(audio)
        except Exception as exc:  # a broken call is a failed scenario with its reason, never a traceback
            record.error = one_line(exc)
        finally:
            record.ended_reason = await self.client.hangup() if record.conversation_id else "not connected"
            await self.client.close()
            record.caller_audio = self.source.samples.copy()
            record.agent_audio = self.client.agent_audio()
            record.duration_s = time.monotonic() - record.started_at
        return record

    async def _play_turns(self, audio: list[Int16Array | None]) -> None:
        turns = self.scenario.turns
        for i, turn in enumerate(turns):
            if self.client.ended:
                self.record.error = f"the call ended before turn {turn.index}: {self.client.ended_reason}"
                return
            rec = TurnRecord(turn, started_at=time.monotonic())
            self.record.turns.append(rec)
            await asyncio.sleep(turn.hold_s)
            await self._play(turn, audio[i], rec)
            following = turns[i + 1] if i + 1 < len(turns) else None
            if following is not None and following.barge_in is not None:
                await self._until_trigger(rec, following.barge_in.after)
                await asyncio.sleep(following.barge_in.delay_s)
            else:
                await self._until_settled(rec)
            rec.ended_at = time.monotonic()

    async def _play(self, turn: Turn, speech: Int16Array | None, rec: TurnRecord) -> None:
        if speech is not None:
            self.source.say(speech)
            async with asyncio.timeout(speech.size / WEBRTC_RATE + 10.0):
                await self.source.finished.wait()
        elif turn.text is not None:
            await self.client.send_text(turn.text)
        else:
            await asyncio.sleep(turn.silence_s or 0.0)
        rec.input_done_at = time.monotonic()

    async def _wait(self, rec: TurnRecord, done: Callable[[float], bool], what: str) -> None:
        deadline = rec.started_at + self.scenario.timeout_s
        while not self.client.ended:
            now = time.monotonic()
            if done(now):
                return
            if now >= deadline:
                rec.timed_out = True
                rec.note = f"gave up after {self.scenario.timeout_s:g} s (timeout_s) waiting for {what}"
                return
            await asyncio.sleep(0.05)

    async def _until_settled(self, rec: TurnRecord) -> None:
        tracker, turn = self.record.tracker, rec.turn
        tail = INPUT_TAIL_S if turn.say is not None or turn.wav is not None else 0.0

        def settled(now: float) -> bool:
            done_for = now - (rec.input_done_at or now)
            if done_for < tail:
                return False
            started_here = any(t >= rec.started_at for t in tracker.started.values())
            unanswered = turn.silence_s is None and not started_here and not tracker.errors
            if unanswered and (turn.text is not None or done_for < tail + NO_TURN_GRACE_S):
                return False  # not yet answered (a typed turn is always answered)
            return (
                not tracker.vad_speaking
                and not tracker.agent_speaking
                and not tracker.pending_turns()
                and now - tracker.last_activity >= tracker.quiet_s
            )

        await self._wait(rec, settled, "the answer to finish")

    async def _until_trigger(self, rec: TurnRecord, trigger: str) -> None:
        def seen(_now: float) -> bool:
            return any(t >= rec.started_at and is_trigger(e, trigger) for t, e in self.record.events)

        await self._wait(rec, seen, f"{trigger} (the barge-in's cue)")


def is_trigger(event: Event, trigger: str) -> bool:
    """Whether `event` is the barge-in cue `trigger` (scenario.TRIGGERS)."""
    if trigger == "turn_started":
        return isinstance(event, TurnStarted)
    if trigger == "agent_text":
        return isinstance(event, AgentTextDelta)
    if trigger == "agent_speaking":
        return isinstance(event, AgentSpeakingChanged) and event.speaking
    return isinstance(event, ToolCallUpdated) and event.status == "started"


def one_line(exc: BaseException) -> str:
    from platform_core.errors import StudioError

    if isinstance(exc, StudioError):
        text = " ".join(exc.message.split())
        return f"{text} ({exc.hint})" if exc.hint else text
    return " ".join(str(exc).split()) or type(exc).__name__
