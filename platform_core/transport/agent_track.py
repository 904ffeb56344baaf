"""The agent's voice as an aiortc track: a paced 20 ms frame source fed by the voice loop.

The voice loop enqueues segments (one synthesized clause each, with its text). The track plays
them in order and silence in between, and remembers how much of each segment actually left the
platform, so barge-in can keep only the words that were heard.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE, Int16Array, pcm_to_frame
from platform_core.transport.pacing import FramePacer


@dataclass
class Segment:
    """One clause of the agent's answer, as 48 kHz mono PCM."""

    text: str
    pcm: Int16Array
    turn_id: int
    played: int = 0  # samples that have left the platform
    final: bool = False  # the last segment of its turn
    on_first_frame: Callable[[float], None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.played >= len(self.pcm)


@dataclass(frozen=True)
class PlayedSegment:
    text: str
    fraction: float  # 0..1 of the segment's audio that was played


class PlaybackQueue:
    """Segments waiting to be played, and the bookkeeping of what was played."""

    def __init__(self) -> None:
        self._segments: deque[Segment] = deque()
        self.on_segment_done: Callable[[Segment], None] | None = None
        self.on_frame: Callable[[Int16Array, bool], None] | None = None  # (pcm, from a segment)

    def enqueue(self, segment: Segment) -> None:
        self._segments.append(segment)

    @property
    def busy(self) -> bool:
        return bool(self._segments)

    def next_frame(self) -> Int16Array:
        """The next 20 ms of audio: the queued segments' samples, padded with silence."""
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
                if self.on_segment_done is not None:
                    self.on_segment_done(seg)
        if self.on_frame is not None:
            self.on_frame(out, had_audio)
        return out

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


class AgentAudioTrack(MediaStreamTrack):
    """Outbound audio track: pulls 20 ms frames from a PlaybackQueue in real time."""

    kind = "audio"

    def __init__(self, queue: PlaybackQueue) -> None:
        super().__init__()
        self.queue = queue
        self._pacer = FramePacer()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_frame()
        if self.readyState != "live":  # stopped while waiting for the frame's slot: the call is over
            raise MediaStreamError
        return pcm_to_frame(self.queue.next_frame(), WEBRTC_RATE, pts)
