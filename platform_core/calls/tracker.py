"""Following a call from the caller's side: its events (when is it over?) and the agent's voice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from platform_core.events import (
    AgentInterrupted,
    AgentPaused,
    AgentResumed,
    AgentSpeakingChanged,
    AgentTextDelta,
    ErrorOccurred,
    Event,
    ToolCallUpdated,
    TranscriptFinal,
    TranscriptPartial,
    TurnCompleted,
    TurnStarted,
    VadStateChanged,
)

SPEECH_DBFS = -45.0  # a 20 ms frame louder than this counts as speech (input) or voice (agent)


@dataclass
class CallTracker:
    """Follows a conversation's events and decides when the call is over (no I/O, no loop)."""

    quiet_s: float = 1.0
    started: dict[int, float] = field(default_factory=dict)  # turn_id -> time.monotonic() seen
    completed: dict[int, TurnCompleted] = field(default_factory=dict)
    tool_calls: dict[tuple[int | None, str], ToolCallUpdated] = field(default_factory=dict)  # (turn, call id)
    errors: list[ErrorOccurred] = field(default_factory=list)
    user_text: dict[int, str] = field(default_factory=dict)  # final transcripts, for unfinished turns
    user_partials: dict[int, list[str]] = field(default_factory=dict)  # words shown while the caller spoke
    agent_text: dict[int, str] = field(default_factory=dict)  # clauses handed to TTS so far
    # The turn-taking decisions while the caller spoke over the agent (paused, resumed, interrupted).
    floor: list[AgentPaused | AgentResumed | AgentInterrupted] = field(default_factory=list)
    vad_speaking: bool = False
    agent_speaking: bool = False
    last_activity: float = field(default_factory=time.monotonic)

    def on_event(self, event: Event, now: float) -> None:
        if isinstance(event, TurnStarted):
            self.started.setdefault(event.turn_id, now)
        elif isinstance(event, TurnCompleted):
            self.completed[event.turn_id] = event
        elif isinstance(event, ToolCallUpdated):
            self.tool_calls[(event.turn_id, event.call_id)] = event
        elif isinstance(event, VadStateChanged):
            self.vad_speaking = event.speaking
        elif isinstance(event, AgentSpeakingChanged):
            self.agent_speaking = event.speaking
        elif isinstance(event, ErrorOccurred):
            self.errors.append(event)
        elif isinstance(event, AgentPaused | AgentResumed | AgentInterrupted):
            self.floor.append(event)
        else:
            self._on_text(event)  # text is no activity: the agent's quiet time goes on
            return
        self.last_activity = now

    def _on_text(self, event: Event) -> None:
        if isinstance(event, TranscriptPartial):
            self.user_partials.setdefault(event.turn_id, []).append(event.text)
        elif isinstance(event, TranscriptFinal):
            self.user_text[event.turn_id] = event.text
        elif isinstance(event, AgentTextDelta):
            self.agent_text[event.turn_id] = (self.agent_text.get(event.turn_id, "") + " " + event.text).strip()

    def pending_turns(self) -> list[int]:
        return sorted(set(self.started) - set(self.completed))

    def settled(self, now: float, *, input_done_for: float | None, input_tail_s: float, need_turn: bool) -> bool:
        """True when hanging up loses nothing: input played out, every turn answered, agent quiet."""
        if input_done_for is None or input_done_for < input_tail_s:
            return False  # the VAD needs its silence window after the last word to commit a turn
        if need_turn and not self.started and not self.errors:
            return False  # a typed turn was sent and not yet acknowledged
        return (
            not self.vad_speaking
            and not self.agent_speaking
            and not self.pending_turns()
            and now - self.last_activity >= self.quiet_s
        )


class AgentVoiceClock:
    """Arrival times of the agent's non-silent frames, for the caller-side mouth-to-ear figure."""

    def __init__(self) -> None:
        self.voiced: list[float] = []

    def __call__(self, frame: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean((frame.astype(np.float32) / 32768.0) ** 2)))
        if 20 * np.log10(rms + 1e-9) > SPEECH_DBFS:
            self.voiced.append(time.monotonic())

    def first_after(self, t: float) -> float | None:
        return next((v for v in self.voiced if v >= t), None)
