"""Speech made with the project's own Piper voice, for the model and engine tests (real engines)."""

from __future__ import annotations

import functools
import re

import numpy as np

from platform_core.engines.base import FloatAudio
from platform_core.engines.tts.piper import PiperTTS


@functools.cache
def piper_voice() -> PiperTTS:
    from platform_core.models import ensure_model

    return PiperTTS(ensure_model("piper-joe"))


def resample(audio: np.ndarray, src_rate: int, dst_rate: int) -> FloatAudio:
    """Band-limited resampling of a whole clip through the FFT (fine for test clips)."""
    x = audio.astype(np.float64)
    n = round(x.size * dst_rate / src_rate)
    spectrum = np.fft.rfft(x)[: n // 2 + 1]
    return (np.fft.irfft(spectrum, n) * (n / x.size)).astype(np.float32)


@functools.cache
def speech_16k(text: str) -> FloatAudio:
    """`text` spoken by the Piper voice: float32 mono at 16 kHz."""
    tts = piper_voice()
    pcm = np.concatenate(list(tts.synthesize(text)))
    return resample(pcm.astype(np.float32) / 32768.0, tts.sample_rate, 16000)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())
