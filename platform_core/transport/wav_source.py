"""Audio tracks that play a caller's voice from a file (or silence) into a WebRTC peer connection.

Tracks are pulled by aiortc's sender: `recv()` paces itself by frame timestamps, so the platform
hears the file in real time, exactly as if someone spoke it into a microphone. After the file the
track keeps sending silence (a real microphone never stops), and `finished` is set.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE, Int16Array, pcm_to_frame
from platform_core.audio_files import AudioFileError, read_audio
from platform_core.transport.pacing import FramePacer

SAMPLE_RATE = WEBRTC_RATE  # 48 kHz mono int16 20 ms frames: what aiortc's Opus encoder expects
__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "AudioFileError", "PacedAudioTrack", "SilenceSource", "WavSource"]


class PacedAudioTrack(MediaStreamTrack):
    """The paced base of every outbound audio track: plays int16 mono 48 kHz samples in real-time
    20 ms frames (timed by `FramePacer`), then silence for ever.

    Subclasses may gate or watch what is sent (`outgoing`), or take their frames from elsewhere,
    e.g. a microphone its device paces (`next_frame`, with `FramePacer.take`).
    """

    kind = "audio"

    def __init__(self, samples: Int16Array | None = None) -> None:
        super().__init__()
        self._samples = samples if samples is not None else np.zeros(0, np.int16)
        self.pacer = FramePacer(SAMPLE_RATE, FRAME_SAMPLES)
        self.finished_at: float | None = None  # time.monotonic() when the samples had been played
        self.finished = asyncio.Event()

    @property
    def samples(self) -> Int16Array:
        return self._samples

    def say(self, pcm: Int16Array) -> None:
        """Play `pcm` from the next frame on, instead of whatever was not played yet."""
        played = self._samples[: self.pacer.position]
        gap = np.zeros(max(0, self.pacer.position - played.size), np.int16)
        self._samples = np.concatenate([played, gap, pcm])
        self.finished.clear()

    @property
    def started_at(self) -> float | None:
        """time.monotonic() of the first frame."""
        return self.pacer.started_at

    @property
    def duration_s(self) -> float:
        return self._samples.size / SAMPLE_RATE

    async def next_frame(self) -> tuple[int, Int16Array, float]:
        """(pts, 960 samples, time.monotonic() of the first sample) of the next frame, once it is due."""
        pts = await self.pacer.next_frame()
        chunk = self._samples[pts : pts + FRAME_SAMPLES]
        if chunk.size < FRAME_SAMPLES:
            if pts >= self._samples.size and not self.finished.is_set():
                self.finished_at = time.monotonic()
                self.finished.set()
            chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - chunk.size, np.int16)])
        return pts, chunk, time.monotonic()

    def outgoing(self, samples: Int16Array, t_first: float) -> Int16Array:
        """What is sent of a frame's samples: all of them here; subclasses mute or record."""
        return samples

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts, samples, t_first = await self.next_frame()
        return pcm_to_frame(self.outgoing(samples, t_first), SAMPLE_RATE, pts)


class SilenceSource(PacedAudioTrack):
    """A microphone that is never spoken into (typed turns only)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.finished.set()


class WavSource(PacedAudioTrack):
    """Plays an audio file (any common WAV rate, channel count or bit depth) as the caller's mic."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(read_audio(self.path))
