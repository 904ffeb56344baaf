"""Smart Turn v3.2 (Pipecat's open turn model, BSD-2-Clause) on ONNX Runtime, without Pipecat.

A Whisper-tiny encoder with a small head: from the last 8 s of the caller's audio (zero-padded at
the front when shorter) it gives the probability that the caller has finished their turn. One
call is ~50-60 ms on one core here: it uses a single thread, so it never takes both cores from
whisper or the LLM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from platform_core.engines.base import EngineUnavailable, FloatAudio
from platform_core.engines.turn.features import SAMPLE_RATE, log_mel

WINDOW_S = 8


class SmartTurn:
    """Blocking; one call at a time (the runner gives it one worker thread)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # piper-tts depends on it, so a broken install
            raise EngineUnavailable("ONNX Runtime is not installed.", "Run `make setup`.") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime raises its own untyped errors for a bad file
            raise EngineUnavailable(
                f"The turn model {model_path.name} could not be loaded: {exc}",
                "Run `conversimple-platform prepare-models --verify`.",
            ) from exc
        self._input = self._session.get_inputs()[0].name

    def completion_probability(self, audio: FloatAudio) -> float:
        """Probability (0..1) that the turn in `audio` (16 kHz mono, ending now) is complete."""
        window = SAMPLE_RATE * WINDOW_S
        clip = np.asarray(audio, dtype=np.float32)[-window:]
        if len(clip) < window:
            clip = np.concatenate([np.zeros(window - len(clip), dtype=np.float32), clip])
        features = log_mel(clip)[None, :, :]
        (output,) = self._session.run(None, {self._input: features})
        return float(np.asarray(output).reshape(-1)[0])

    def close(self) -> None:
        pass
