"""Test speech made with the project's own Piper voice, and whisper to hear the agent's answers."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from platform_core.audio import STT_RATE, WEBRTC_RATE, MonoResampler, to_float32
from platform_core.audio_files import read_audio, write_wav
from platform_core.engines.base import FloatAudio
from platform_core.engines.tts.piper import PiperTTS


@functools.cache
def piper_voice() -> PiperTTS:
    from platform_core.models.store import ensure_model

    return PiperTTS(ensure_model("piper-joe"))


@functools.cache
def _stt():  # type: ignore[no-untyped-def]
    from platform_core.engines.stt.whisper_cpp import WhisperCppSTT
    from platform_core.models.stt_model import resolve_stt_model

    return WhisperCppSTT(resolve_stt_model("whisper-tiny.en"))


def speak(text: str, rate: int = 48_000) -> np.ndarray:
    """`text` spoken by the Piper voice, as int16 mono at `rate`: the same samples on every run (a test's
    outcome must not hang on Piper's random variation, which once made whisper hear "Paris" as "pairs")."""
    tts = piper_voice()
    pcm = np.concatenate(list(tts.synthesize(text, steady=True)))
    return MonoResampler(rate).resample(pcm, tts.sample_rate)


@functools.cache
def speech_16k(text: str) -> FloatAudio:
    """`text` spoken by the Piper voice: float32 mono at 16 kHz, as the STT engine takes it."""
    return to_float32(speak(text, STT_RATE))


def speech_file(path: Path, text: str, rate: int = 16_000, *, lead_s: float = 0.5, tail_s: float = 0.5) -> Path:
    """A mono WAV of `text` with silence around it."""
    silence = np.zeros(int(rate * lead_s), dtype=np.int16), np.zeros(int(rate * tail_s), dtype=np.int16)
    return write_wav(path, np.concatenate([silence[0], speak(text, rate), silence[1]]), rate)


def speech_wav(folder: Path, text: str, rate: int = 16_000, *, lead_s: float = 0.5, tail_s: float = 0.5) -> Path:
    """`speech_file` in `folder`, named after the text."""
    name = "".join(c if c.isalnum() else "_" for c in text.lower())[:40]
    return speech_file(folder / f"{name}_{rate}.wav", text, rate, lead_s=lead_s, tail_s=tail_s)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """An answer file as (int16 mono samples, rate): at 48 kHz, the rate calls are recorded at."""
    return read_audio(path, WEBRTC_RATE), WEBRTC_RATE


def transcribe(pcm: np.ndarray, rate: int) -> str:
    audio = MonoResampler(STT_RATE).resample(pcm.astype(np.int16), rate)
    return str(_stt().transcribe(to_float32(audio)))


def word_list(text: str) -> list[str]:
    """The words of `text` in order, lower case, without punctuation (repeats show)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def words(text: str) -> set[str]:
    return set(word_list(text))
