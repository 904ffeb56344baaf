"""Following a call from the caller's side: its events (when is it over?) and the agent's voice."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPEECH_DBFS = -45.0  # a 20 ms frame louder than this counts as speech (input) or voice (agent)


@dataclass
class CallTracker:
    """Follows a conversation's events and decides when the call is over (no I/O, no loop)."""

    quiet_s: float = 1.0
    started: dict[int, float] = field(default_factory=dict)  # turn_id -> time.monotonic() seen
    completed: dict[int, dict[str, Any]] = field(default_factory=dict)
    tool_calls: dict[tuple[Any, str], dict[str, Any]] = field(default_factory=dict)  # (turn, call id)
    errors: list[dict[str, Any]] = field(default_factory=list)
    user_text: dict[int, str] = field(default_factory=dict)  # final transcripts, for unfinished turns
    user_partials: dict[int, list[str]] = field(default_factory=dict)  # words shown while the caller spoke
    agent_text: dict[int, str] = field(default_factory=dict)  # clauses handed to TTS so far
    vad_speaking: bool = False
    agent_speaking: bool = False
    last_activity: float = field(default_factory=time.monotonic)

    def on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("kind")
        if kind == "TurnStarted":
            self.started.setdefault(int(event["turn_id"]), now)
        elif kind == "TurnCompleted":
            self.completed[int(event["turn_id"])] = event
        elif kind == "ToolCallUpdated":
            self.tool_calls[(event.get("turn_id"), str(event["call_id"]))] = event
        elif kind == "VadStateChanged":
            self.vad_speaking = bool(event["speaking"])
        elif kind == "AgentSpeakingChanged":
            self.agent_speaking = bool(event["speaking"])
        elif kind == "ErrorOccurred":
            self.errors.append(event)
        elif kind == "TranscriptPartial":
            self.user_partials.setdefault(int(event["turn_id"]), []).append(str(event.get("text", "")))
            return
        elif kind == "TranscriptFinal":
            self.user_text[int(event["turn_id"])] = str(event.get("text", ""))
            return
        elif kind == "AgentTextDelta":
            turn_id = int(event["turn_id"])
            self.agent_text[turn_id] = (self.agent_text.get(turn_id, "") + " " + str(event["text"])).strip()
            return
        else:
            return
        self.last_activity = now

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
