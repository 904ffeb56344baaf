"""Speech-to-text with whisper.cpp (through pywhispercpp): English, greedy, one segment, no timestamps.

Speed comes from `audio_ctx`: whisper's encoder normally covers a 30 s window (1500 positions,
50 per second of audio); a short utterance only needs a fraction of that. The context used is
max(configured, 50 per second + a margin), because a context shorter than the speech cuts it
off and one barely longer makes whisper repeat itself.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import re
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from platform_core.engines.base import EngineUnavailable, FloatAudio
from platform_core.engines.stt.repetition import collapse_repetition

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FULL_AUDIO_CTX = 1500  # whisper's 30 s window
GGML_MAGIC = 0x67676D6C
CTX_PER_SECOND = 50
CTX_MARGIN = 64  # ~1.3 s; +32 made tiny.en repeat a 2 s sentence
SILENCE_PEAK = 1e-3  # about -60 dBFS
MIN_SECONDS = 1.0  # whisper is unreliable on shorter input: pad with silence
# Whisper's non-speech outputs: "[BLANK_AUDIO]", "(music)", "[ Silence ]", "*laughs*" ...
_NON_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")

_live: weakref.WeakSet[WhisperCppSTT] = weakref.WeakSet()
_logs_routed = False
_GGML_LOG_ERROR = 4
# whisper.cpp reports a failed load only in its log (pywhispercpp returns a null context that
# crashes later), so the sink keeps recent error lines for the constructor to check.
_errors: collections.deque[str] = collections.deque(maxlen=20)
_load_lock = threading.Lock()


def _route_logs() -> None:
    """Send whisper.cpp's log lines to `logging` (DEBUG) instead of the terminal. Process-wide."""
    global _logs_routed
    if _logs_routed:
        return
    import _pywhispercpp as pw

    def sink(level: int, text: str) -> None:
        if level >= _GGML_LOG_ERROR:
            _errors.append(text.strip())
        log.debug("whisper.cpp: %s", text.rstrip())

    pw.whisper_log_set(sink)
    atexit.register(_shutdown)
    _logs_routed = True


def _shutdown() -> None:
    # Free models while Python can still run the log callback: a model freed during interpreter
    # finalisation calls back into Python without a thread state and aborts the process.
    for stt in list(_live):
        stt.close()
    import _pywhispercpp as pw

    pw.whisper_log_set(None)


def clean_transcript(text: str) -> str:
    """Drop bracketed non-speech annotations, squeeze whitespace, undo decoder loops."""
    return collapse_repetition(" ".join(_NON_SPEECH.sub(" ", text).split()))


LEADING_SILENCE_S = 0.5
TRAILING_SILENCE_S = 0.5


class WhisperCppSTT:
    """One loaded whisper.cpp model. Not re-entrant: whisper.cpp keeps one decoding state per
    model, so calls are serialised by a lock; the voice loop calls it from one worker thread."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self, model_path: Path, threads: int = 2, audio_ctx: int = 256, *, min_probability: float = 0.35
    ) -> None:
        _route_logs()
        from pywhispercpp.model import Model

        self.model_path = Path(model_path)
        self.threads = threads
        self.audio_ctx = max(0, min(audio_ctx, FULL_AUDIO_CTX))
        # Segments whose mean token probability is lower are dropped: on noise, hum or breath whisper
        # invents text ("I'm going to go.", p~0.15) while real speech scores ~0.6-0.9.
        self.min_probability = min_probability
        self._lock = threading.Lock()
        if not self.model_path.is_file():
            raise EngineUnavailable(
                f"Speech-to-text model {self.model_path} does not exist.",
                "Run `conversimple-platform prepare-models` or choose another STT model.",
            )
        with self.model_path.open("rb") as fh:
            if int.from_bytes(fh.read(4), "little") != GGML_MAGIC:
                raise EngineUnavailable(
                    f"{self.model_path} is not a whisper.cpp ggml model.",
                    "Choose a ggml .bin file, or a built-in model such as whisper-tiny.en.",
                )
        with _load_lock:
            _errors.clear()
            self._model: Any = self._load(Model, threads)
            failed = [e for e in _errors if "failed to load" in e or "ERROR" in e]
        if failed:
            self._model = None
            raise EngineUnavailable(
                f"whisper.cpp could not load {self.model_path}: {'; '.join(failed)}",
                "The file is damaged or incomplete: run `conversimple-platform prepare-models --verify` "
                "for a built-in model, or download your own file again.",
            )
        _live.add(self)

    def _load(self, model_cls: Any, threads: int) -> Any:
        try:
            return model_cls(
                str(self.model_path),
                n_threads=threads,
                print_progress=False,
                print_realtime=False,
                print_timestamps=False,
                language="en",
                translate=False,
                no_context=True,
                no_timestamps=True,
                single_segment=True,
                suppress_blank=True,
                suppress_nst=True,
                temperature=0.0,
                temperature_inc=0.0,  # no temperature fallback: one greedy pass keeps latency bounded
            )
        except Exception as exc:  # pywhispercpp raises RuntimeError / ValueError on a bad file
            raise EngineUnavailable(
                f"whisper.cpp could not load {self.model_path}: {exc}",
                "Check that the file is a whisper.cpp ggml model, or run "
                "`conversimple-platform prepare-models` to rebuild the built-in one.",
            ) from exc

    def audio_ctx_for(self, seconds: float) -> int:
        """Encoder context for `seconds` of audio (see the module docstring)."""
        if self.audio_ctx == 0:
            return 0  # 0 = whisper.cpp's full window
        needed = math.ceil(seconds * CTX_PER_SECOND) + CTX_MARGIN
        return min(max(self.audio_ctx, needed), FULL_AUDIO_CTX)

    def transcribe(self, audio: FloatAudio, should_abort: Callable[[], bool] | None = None) -> str:
        """Text of one utterance (16 kHz mono float32). Blocking: call from a worker thread."""
        samples = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if samples.size == 0 or float(np.max(np.abs(samples))) < SILENCE_PEAK:
            return ""  # whisper "hears" words in digital silence ("you")
        # Speech that starts at the very first sample makes whisper repeat the sentence ("Hello? Hello?
        # Hello?"), measured with a reduced audio_ctx; silence around it ends it cleanly.
        samples = np.pad(samples, (int(LEADING_SILENCE_S * SAMPLE_RATE), int(TRAILING_SILENCE_S * SAMPLE_RATE)))
        if samples.size < MIN_SECONDS * SAMPLE_RATE:
            samples = np.pad(samples, (0, int(MIN_SECONDS * SAMPLE_RATE) - samples.size))
        seconds = samples.size / SAMPLE_RATE
        with self._lock:
            if self._model is None:
                raise RuntimeError("WhisperCppSTT is closed")
            segments = self._model.transcribe(
                samples,
                audio_ctx=self.audio_ctx_for(seconds),
                # A cap on runaway repetition: speech is ~3-4 tokens per second.
                max_tokens=int(seconds * 8) + 16,
                extract_probability=True,
                # whisper.cpp polls it between decoder steps (not inside the encoder, ~0.2 s on tiny.en).
                abort_callback=should_abort,
            )
        kept = [s.text for s in segments if not s.probability < self.min_probability]  # NaN: keep
        return clean_transcript(" ".join(kept))

    def close(self) -> None:
        with self._lock:
            self._model = None  # pywhispercpp frees the context in __del__
        _live.discard(self)
