"""Text-to-speech with Piper (ONNX voices), sentence by sentence so the first audio comes early."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from platform_core.engines.base import EngineUnavailable, Int16Audio


class PiperTTS:
    """A loaded Piper voice. `synthesize` yields one int16 chunk per sentence at the voice's rate.

    Each synthesis step holds a lock, so several threads may share one voice (they take turns)."""

    def __init__(self, model_path: Path, threads: int = 2, length_scale: float | None = None) -> None:
        self.model_path = Path(model_path)
        config_path = self.model_path.with_name(self.model_path.name + ".json")
        if not self.model_path.is_file() or not config_path.is_file():
            raise EngineUnavailable(
                f"Piper voice {self.model_path} (or its .onnx.json) is missing.",
                "Run `conversimple-platform prepare-models` or choose another voice.",
            )
        try:
            import onnxruntime
            from piper import PiperVoice, SynthesisConfig
            from piper.config import PiperConfig
        except ImportError as exc:
            raise EngineUnavailable(
                "Piper is not installed.", "Run: pip install piper-tts==1.8.0  (or `make setup`)"
            ) from exc
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
            session = onnxruntime.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineUnavailable(
                f"Piper could not load {self.model_path}: {exc}",
                "Run `conversimple-platform prepare-models --verify` to check the voice files.",
            ) from exc
        # PiperVoice.load() offers no thread setting, so the session is built here.
        self._voice = PiperVoice(config=config, session=session)
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        # Piper's model draws random noise for each synthesis (prosody and timing vary); without it the
        # voice is the model's mean rendition, the same samples every time.
        self._steady_config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
        self.sample_rate: int = config.sample_rate
        self._lock = threading.Lock()

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[Int16Audio]:
        """int16 mono chunks for `text`, one per sentence; nothing for blank text. Blocking.
        `steady`: the same samples for the same text every time."""
        if not text.strip():
            return
        config = self._steady_config if steady else self._syn_config
        chunks = iter(self._voice.synthesize(text, syn_config=config))
        while True:
            # Lock each step, not the whole generator: an abandoned generator (barge-in) must not
            # keep the voice locked. espeak-ng (phonemes) is not thread-safe.
            with self._lock:
                chunk = next(chunks, None)
            if chunk is None:
                return
            audio = chunk.audio_int16_array
            if audio.size:
                yield np.ascontiguousarray(audio, dtype=np.int16).reshape(-1)

    def close(self) -> None:
        self._voice = None  # type: ignore[assignment]
