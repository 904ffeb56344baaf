"""Small audio helpers shared by the transport and the voice loop: PCM <-> av frames, resampling, levels.

Conventions: PCM is mono int16 numpy arrays; WebRTC media runs at 48 kHz in 20 ms frames (960
samples); STT and VAD take float32 at 16 kHz. These constants are the one definition (exported by
`platform_core`); av is imported on first use, so the app can read them before its window is up.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import av

WEBRTC_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
STT_RATE = 16_000

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]


def pcm_to_frame(pcm: Int16Array, rate: int, pts: int | None = None) -> av.AudioFrame:
    """A mono s16 av.AudioFrame holding `pcm`."""
    import av

    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = rate
    if pts is not None:
        frame.pts = pts
        frame.time_base = Fraction(1, rate)
    return frame


def frame_to_mono(frame: av.AudioFrame) -> Int16Array:
    """Mono int16 samples of any s16 frame (packed or planar, any channel count), at the frame's rate."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if data.dtype != np.int16:
        raise ValueError(f"expected s16 audio, got {frame.format.name}")
    if frame.format.is_planar:
        samples = data.astype(np.int32).mean(axis=0) if data.shape[0] > 1 else data[0]
    else:
        interleaved = data.reshape(-1, channels)
        samples = interleaved.astype(np.int32).mean(axis=1) if channels > 1 else interleaved[:, 0]
    return np.asarray(samples, dtype=np.int16)


class MonoResampler:
    """Stateful mono int16 resampler (one per stream, so block edges stay continuous)."""

    def __init__(self, out_rate: int) -> None:
        import av

        self.out_rate = out_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)

    def resample_frame(self, frame: av.AudioFrame) -> Int16Array:
        """Any decoded frame (any layout/format/rate) -> mono int16 at `out_rate`."""
        frame.pts = None  # the resampler re-times frames itself; decoder pts may jump after packet loss
        out = [frame_to_mono(f) for f in self._resampler.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)

    def resample(self, pcm: Int16Array, in_rate: int) -> Int16Array:
        if in_rate == self.out_rate:
            return pcm
        return self.resample_frame(pcm_to_frame(pcm, in_rate))

    def flush(self) -> Int16Array:
        out = [frame_to_mono(f) for f in self._resampler.resample(None)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def to_float32(pcm: Int16Array) -> Float32Array:
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def level(pcm: Int16Array) -> tuple[float, float]:
    """(RMS in dBFS, peak 0..1) of a block; silence is -100 dBFS."""
    if pcm.size == 0:
        return -100.0, 0.0
    samples = pcm.astype(np.float32) / 32768.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    peak = float(np.max(np.abs(samples)))
    return (20.0 * math.log10(rms) if rms > 1e-5 else -100.0), peak


def is_audible(pcm: Int16Array, threshold_dbfs: float = -50.0) -> bool:
    return level(pcm)[0] > threshold_dbfs
