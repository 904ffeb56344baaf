"""The agent's outbound audio: synthesized clauses queued per turn, what of them was played, the cut.

The responder queues one segment per clause; the agent's track pulls 20 ms frames from
`Playback.next_frame` in real time. Playback remembers how much of each segment left the platform,
so barge-in keeps only the words that were heard, and marks each turn's first audio (e2e latency)
and its segments as played (the turn is over once everything it said was heard). While the caller's
speech over the agent is being judged, playback is paused: silence goes out and every segment keeps its
position, so a false interruption resumes mid-word with nothing lost.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from platform_core.audio import FRAME_SAMPLES, Int16Array, level
from platform_core.events import AgentSpeakingChanged, AudioLevel, Event
from platform_core.pipeline.turn import MetricRecorder, PlayedSegment, Turn


@dataclass
class Segment:
    """One clause of the agent's answer, as 48 kHz mono PCM."""

    text: str
    pcm: Int16Array
    turn_id: int
    played: int = 0  # samples that have left the platform
    on_first_frame: Callable[[float], None] | None = field(default=None, repr=False)
    on_done: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.played >= len(self.pcm)


class PlaybackQueue:
    """Segments waiting to be played, and the bookkeeping of what was played."""

    def __init__(self) -> None:
        self._segments: deque[Segment] = deque()
        self.on_segment_done: Callable[[Segment], None] | None = None

    def enqueue(self, segment: Segment) -> None:
        self._segments.append(segment)

    @property
    def busy(self) -> bool:
        return bool(self._segments)

    def has(self, turn_id: int) -> bool:
        return any(seg.turn_id == turn_id for seg in self._segments)

    def next_frame(self) -> tuple[Int16Array, bool]:
        """The next 20 ms of audio (the queued segments' samples, padded with silence), and whether
        any of it came from a segment."""
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        filled = 0
        had_audio = False
        while filled < FRAME_SAMPLES and self._segments:
            seg = self._segments[0]
            if seg.played == 0 and seg.on_first_frame is not None:
                seg.on_first_frame(time.monotonic())
            take = min(FRAME_SAMPLES - filled, len(seg.pcm) - seg.played)
            out[filled : filled + take] = seg.pcm[seg.played : seg.played + take]
            seg.played += take
            filled += take
            had_audio = had_audio or take > 0
            if seg.done:
                self._segments.popleft()
                if seg.on_done is not None:
                    seg.on_done()
                if self.on_segment_done is not None:
                    self.on_segment_done(seg)
        return out, had_audio

    def clear(self, turn_id: int | None = None) -> list[PlayedSegment]:
        """Drop queued audio (of one turn, or all); returns what had been played of each dropped segment."""
        kept: deque[Segment] = deque()
        dropped: list[PlayedSegment] = []
        for seg in self._segments:
            if turn_id is None or seg.turn_id == turn_id:
                dropped.append(PlayedSegment(seg.text, seg.played / max(1, len(seg.pcm))))
            else:
                kept.append(seg)
        self._segments = kept
        return dropped


class Playback:
    """One conversation's outbound audio, as a frame source for the agent's track."""

    def __init__(
        self, conversation_id: str, *, record_metric: MetricRecorder, publish: Callable[[Event], None]
    ) -> None:
        self.conversation_id = conversation_id
        self.queue = PlaybackQueue()
        self._record_metric = record_metric
        self._publish = publish
        self._agent_speaking = False
        self.paused = False

    def play(self, turn: Turn | None, text: str, pcm: Int16Array, *, filler: bool = False) -> None:
        """Queue one synthesized clause (of `turn`, or of no turn: the greeting); a `filler` holds the line
        while a tool runs and is not the answer."""
        segment = Segment(text=text, pcm=pcm, turn_id=turn.turn_id if turn else 0)
        if turn is not None:
            turn.segment_enqueued()
            segment.on_done = lambda: turn.segment_played(text)
            if turn.first_audio_at is None or (turn.answer_audio_at is None and not filler):
                segment.on_first_frame = self._first_audio_callback(turn, filler)
        self.queue.enqueue(segment)

    def cut(self, turn: Turn | None) -> list[PlayedSegment]:
        """Stop the turn's (None: the greeting's) audio now; what had been played of each of its segments
        still queued."""
        return self.queue.clear(turn.turn_id if turn else 0)

    def pause(self) -> None:
        """Hold the agent's voice: silence from the next frame on, every segment keeps its position."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def next_frame(self) -> Int16Array:
        """The next 20 ms of the agent's voice (silence when there is nothing to say or it is paused)."""
        if self.paused:
            pcm, had_audio = np.zeros(FRAME_SAMPLES, dtype=np.int16), False
        else:
            pcm, had_audio = self.queue.next_frame()
        rms, peak = level(pcm)
        self._publish(AudioLevel(conversation_id=self.conversation_id, source="agent", rms_dbfs=rms, peak=peak))
        speaking = had_audio or self.queue.busy
        if speaking != self._agent_speaking:
            self._agent_speaking = speaking
            self._publish(AgentSpeakingChanged(conversation_id=self.conversation_id, speaking=speaking))
        return pcm

    def _first_audio_callback(self, turn: Turn, filler: bool) -> Callable[[float], None]:
        def on_first_frame(t: float) -> None:
            if turn.first_audio_at is None:
                turn.first_audio_at = t
                self._record_metric(turn, "e2e_latency", t - turn.speech_ended_at)
            if turn.answer_audio_at is None and not filler:
                turn.answer_audio_at = t
                self._record_metric(turn, "answer_latency", t - turn.speech_ended_at)

        return on_first_frame
