"""Builds the configured engines, preparing their models first, with progress on the bus."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from platform_core.config import EngineConfig
from platform_core.engines.runner import Engines

Progress = Callable[[str, str, float | None], None]  # (component, message, fraction)


def _load_stt(config: EngineConfig, progress: Progress):  # type: ignore[no-untyped-def]
    from platform_core.engines.stt.whisper_cpp import WhisperCppSTT
    from platform_core.models.stt_model import resolve_stt_model

    path = resolve_stt_model(config.stt_model, lambda m, f: progress("stt", m, f))
    progress("stt", f"loading whisper.cpp ({path.name})", None)
    return WhisperCppSTT(path, threads=config.stt_threads, audio_ctx=config.stt_audio_ctx)


def _load_tts(config: EngineConfig, progress: Progress):  # type: ignore[no-untyped-def]
    from platform_core.engines.tts.piper import PiperTTS
    from platform_core.models.store import ensure_model

    path = ensure_model(config.tts_voice, lambda m, f: progress("tts", m, f))
    progress("tts", f"loading Piper voice ({path.name})", None)
    return PiperTTS(path)


def _check_vad() -> Callable[[], object]:
    from platform_core.engines.vad.silero import SileroVAD

    SileroVAD()  # loads the ONNX model once, so a broken install fails at start, not mid-call
    return SileroVAD


async def load_engines(config: EngineConfig, progress: Progress) -> Engines:
    """Load every engine; the blocking ones on worker threads, concurrently with the LLM's start."""
    from platform_core.engines.llm import create_llm

    llm = create_llm(config, progress=lambda m, f: progress("llm", m, f))
    progress("llm", f"starting {llm.name}", None)
    stt, tts, vad_factory, _ = await asyncio.gather(
        asyncio.to_thread(_load_stt, config, progress),
        asyncio.to_thread(_load_tts, config, progress),
        asyncio.to_thread(_check_vad),
        llm.start(),
    )
    for component in ("stt", "tts", "vad", "llm"):
        progress(component, "ready", 1.0)
    return Engines(stt=stt, tts=tts, llm=llm, vad_factory=vad_factory)  # type: ignore[arg-type]
