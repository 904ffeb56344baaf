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
import av.error
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE, pcm_to_frame
from platform_core.errors import StudioError
from platform_core.transport.pacing import FramePacer

SAMPLE_RATE = WEBRTC_RATE  # 48 kHz mono int16 20 ms frames: what aiortc's Opus encoder expects
_FORMATS_HINT = (
    "Use a WAV file (PCM 8/16/24/32-bit or float, any sample rate, mono or stereo); "
    "FLAC, OGG/Opus and MP3 files also work."
)


class AudioFileError(StudioError, ValueError):
    """An input file that cannot be played as the caller's voice; the hint names the formats that work."""


def load_audio(path: str | Path) -> np.ndarray:
    """Decode an audio file to int16 mono samples at 48 kHz.

    Raises `AudioFileError` (a ValueError) naming the file; its hint names the formats that work.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file", _FORMATS_HINT)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path} contains no audio stream", _FORMATS_HINT)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        raise AudioFileError(f"{path} is not a readable audio file ({reason})", _FORMATS_HINT) from exc
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if samples.size == 0:
        raise AudioFileError(f"{path} contains no audio samples (empty recording)", _FORMATS_HINT)
    return samples


class PacedAudioTrack(MediaStreamTrack):
    """Plays int16 mono 48 kHz samples in real-time 20 ms frames, then silence for ever."""

    kind = "audio"

    def __init__(self, samples: np.ndarray | None = None) -> None:
        super().__init__()
        self._samples = samples if samples is not None else np.zeros(0, np.int16)
        self._pacer = FramePacer(SAMPLE_RATE, FRAME_SAMPLES)
        self.finished_at: float | None = None  # time.monotonic() when the samples had been played
        self.finished = asyncio.Event()

    @property
    def samples(self) -> np.ndarray:
        return self._samples

    def say(self, pcm: np.ndarray) -> None:
        """Play `pcm` from the next frame on, instead of whatever was not played yet."""
        played = self._samples[: self._pacer.position]
        gap = np.zeros(max(0, self._pacer.position - played.size), np.int16)
        self._samples = np.concatenate([played, gap, pcm])
        self.finished.clear()

    @property
    def started_at(self) -> float | None:
        """time.monotonic() of the first frame."""
        return self._pacer.started_at

    @property
    def duration_s(self) -> float:
        return self._samples.size / SAMPLE_RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_frame()
        chunk = self._samples[pts : pts + FRAME_SAMPLES]
        if chunk.size < FRAME_SAMPLES:
            if pts >= self._samples.size and not self.finished.is_set():
                self.finished_at = time.monotonic()
                self.finished.set()
            chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - chunk.size, np.int16)])
        return pcm_to_frame(chunk, SAMPLE_RATE, pts)


class SilenceSource(PacedAudioTrack):
    """A microphone that is never spoken into (typed turns only)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.finished.set()


class WavSource(PacedAudioTrack):
    """Plays an audio file (any common WAV rate, channel count or bit depth) as the caller's mic."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(load_audio(self.path))
