"""One turn's state: what was heard, said and played, its timings and tool calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from platform_core.audio import Float32Array
from platform_core.events import MetricName
from platform_core.pipeline.tools import ToolOutcome


@dataclass(frozen=True)
class PlayedSegment:
    """How much of one clause's audio was played when its turn was cut off."""

    text: str
    fraction: float  # 0..1 of the segment's audio that was played


@dataclass
class Turn:
    turn_id: int
    speech_ended_at: float  # monotonic time the caller stopped speaking (or sent the typed turn)
    audio: Float32Array | None = None  # None for a typed turn
    transcript: asyncio.Future[str] | None = None  # transcription already started at the caller's pause
    user_text: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    tool_calls: list[ToolOutcome] = field(default_factory=list)
    played_texts: list[str] = field(default_factory=list)  # segments fully played, in order
    pending_segments: int = 0
    synthesis_finished: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    first_audio_at: float | None = None  # the turn's first audio sent (a filler's, if one was said)
    answer_audio_at: float | None = None  # the answer's own first audio sent
    llm_head_start_s: float | None = None  # its LLM work started this long before it, at the pause

    def segment_enqueued(self) -> None:
        self.pending_segments += 1

    def segment_played(self, text: str) -> None:
        self.pending_segments -= 1
        if text:
            self.played_texts.append(text)
        self._check_drained()

    def finish_synthesis(self) -> None:
        self.synthesis_finished = True
        self._check_drained()

    def _check_drained(self) -> None:
        if self.synthesis_finished and self.pending_segments <= 0:
            self.drained.set()

    def played_text(self, cut: list[PlayedSegment] | None = None) -> str:
        """The words the caller actually heard: whole played segments plus the heard part of cut ones."""
        return heard_text(self.played_texts, cut)


def heard_text(played: list[str], cut: list[PlayedSegment] | None) -> str:
    """Whole played clauses plus the heard part (the played fraction of the words) of cut ones."""
    parts = list(played)
    for seg in cut or []:
        words = seg.text.split()
        heard = round(seg.fraction * len(words))
        if heard:
            parts.append(" ".join(words[:heard]))
    return " ".join(p.strip() for p in parts if p.strip())


MetricRecorder = Callable[[Turn, MetricName, float], None]
"""Records one of a turn's metrics (seconds; a name from `events.METRICS`) and publishes it."""
