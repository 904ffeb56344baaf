"""Audio levels of the caller and the agent over time, with VAD segments, turn boundaries and the
turn-taking decisions (paused, resumed, interrupted, held, committed by the turn model)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from platform_core.events import AgentInterrupted, AgentPaused, AgentResumed, AudioLevel, Event, TurnCommitted, TurnHeld

FLOOR_DBFS = -80.0


def decision_label(event: Event) -> str | None:
    """The level plot's mark for a turn-taking decision; None for a commit on silence alone (every turn
    has one, and its turn line already shows it)."""
    match event:
        case AgentPaused():
            return "paused"
        case AgentResumed():
            return f"resumed ({event.reason}, {event.speech_s:.1f} s speech)"
        case AgentInterrupted():
            return f"interrupted ({event.speech_s:.1f} s speech)"
        case TurnHeld():
            return f"held (p={event.probability:.2f})"
        case TurnCommitted() if event.reason != "silence":
            return f"committed: {event.reason}"
    return None


class LevelTrace:
    """A ring buffer of (t, rms dBFS, peak) for one audio source."""

    def __init__(self, capacity: int) -> None:
        self._data = np.full((capacity, 3), np.nan)
        self._next = 0
        self._count = 0

    def append(self, t: float, rms_dbfs: float, peak: float) -> None:
        self._data[self._next] = (t, max(rms_dbfs, FLOOR_DBFS), peak)
        self._next = (self._next + 1) % len(self._data)
        self._count = min(self._count + 1, len(self._data))

    def __len__(self) -> int:
        return self._count

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, dBFS) in time order."""
        full = self._count == len(self._data)
        data = np.roll(self._data, -self._next, axis=0) if full else self._data[: self._count]
        return data[:, 0].copy(), data[:, 1].copy()

    @property
    def latest_dbfs(self) -> float:
        if not self._count:
            return FLOOR_DBFS
        return float(self._data[(self._next - 1) % len(self._data), 1])


@dataclass
class Segment:
    start: float
    end: float | None = None  # None while still open


@dataclass
class LevelsModel:
    """Everything the level panel draws. `capacity` is per source (50 blocks/s => 10 min at 30000)."""

    capacity: int = 30_000
    caller: LevelTrace = field(init=False)
    agent: LevelTrace = field(init=False)
    vad: list[Segment] = field(default_factory=list)  # caller speech as the platform's VAD saw it
    agent_speaking: list[Segment] = field(default_factory=list)
    turns: list[tuple[float, int]] = field(default_factory=list)  # (speech ended at, turn id)
    # Turn-taking decisions: why the agent paused, resumed, stopped or waited ("held p=0.12").
    decisions: list[tuple[float, str]] = field(default_factory=list)  # (decided at, label)
    version: int = 0

    def __post_init__(self) -> None:
        self.caller = LevelTrace(self.capacity)
        self.agent = LevelTrace(self.capacity)

    def add_levels(self, levels: list[AudioLevel]) -> None:
        for level in levels:
            trace = self.caller if level.source == "caller" else self.agent
            trace.append(level.t, level.rms_dbfs, level.peak)
        if levels:
            self.version += 1

    @staticmethod
    def _toggle(segments: list[Segment], t: float, on: bool) -> None:
        if on and (not segments or segments[-1].end is not None):
            segments.append(Segment(t))
        elif not on and segments and segments[-1].end is None:
            segments[-1].end = t

    def set_vad(self, t: float, speaking: bool) -> None:
        self._toggle(self.vad, t, speaking)
        self.version += 1

    def set_agent_speaking(self, t: float, speaking: bool) -> None:
        self._toggle(self.agent_speaking, t, speaking)
        self.version += 1

    def add_turn(self, speech_ended_at: float, turn_id: int) -> None:
        self.turns.append((speech_ended_at, turn_id))
        self.version += 1

    def add_decision(self, t: float, label: str) -> None:
        self.decisions.append((t, label))
        self.version += 1

    def time_range(self) -> tuple[float, float] | None:
        starts = [tr.arrays()[0][0] for tr in (self.caller, self.agent) if len(tr)]
        ends = [tr.arrays()[0][-1] for tr in (self.caller, self.agent) if len(tr)]
        if not starts:
            return None
        return min(starts), max(ends)
