"""Builds the configured engines, preparing their models first, with progress on the bus.

Everything is imported here, at module level: the loaders run on several threads at once, and
Python's imports are not safe to race (a half-initialised module raises ImportError)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from platform_core.config import EngineConfig, engine_threads
from platform_core.engines.base import LanguageModel, SpeechToText, TextToSpeech, TurnModel, VoiceActivityDetector
from platform_core.engines.health import EngineHealth
from platform_core.engines.llm import create_llm
from platform_core.engines.llm.queue import LLMQueue
from platform_core.engines.runner import Engines, engine_worker
from platform_core.engines.stt.whisper_cpp import WhisperCppSTT
from platform_core.engines.tts.piper import PiperTTS
from platform_core.engines.turn.smart_turn import SmartTurn
from platform_core.engines.vad.silero import SileroVAD
from platform_core.errors import StudioError
from platform_core.models.store import ensure_model
from platform_core.models.stt_model import resolve_stt_model

Progress = Callable[[str, str, float | None], None]  # (component, message, fraction)
log = logging.getLogger(__name__)


def _load_stt(config: EngineConfig, progress: Progress) -> SpeechToText:
    path = resolve_stt_model(config.stt_model, lambda m, f: progress("stt", m, f))
    progress("stt", f"loading whisper.cpp ({path.name})", None)
    threads = engine_threads(config.stt_threads, take_turns=config.take_turns)
    return WhisperCppSTT(path, threads=threads, audio_ctx=config.stt_audio_ctx)


def _load_tts(config: EngineConfig, progress: Progress) -> TextToSpeech:
    path = ensure_model(config.tts_voice, lambda m, f: progress("tts", m, f))
    progress("tts", f"loading Piper voice ({path.name})", None)
    return PiperTTS(path, threads=engine_threads(config.tts_threads, take_turns=config.take_turns))


def _load_turn_model(config: EngineConfig, progress: Progress) -> tuple[TurnModel | None, str]:
    """The end-of-turn model, or (None, why not): without it turns end on silence alone, so a
    missing or damaged model degrades endpointing but never stops the platform."""
    if not config.turn_model:
        return None, "no turn model configured"
    try:
        path = ensure_model(config.turn_model, lambda m, f: progress("turn", m, f))
        progress("turn", f"loading the turn model ({path.name})", None)
        return SmartTurn(path), ""
    except StudioError as exc:
        why = f"{exc.message} {exc.hint}".strip()
    except Exception as exc:  # ONNX Runtime's own errors: logged, and silence endpointing goes on
        why = f"{type(exc).__name__}: {exc}"
    log.warning("turn model unavailable, turns end on silence only: %s", why)
    progress("turn", f"unavailable, turns end on silence only: {why}", 1.0)
    return None, why


def _check_vad() -> Callable[[], VoiceActivityDetector]:
    SileroVAD()  # loads the ONNX model once, so a broken install fails at start, not mid-call
    return SileroVAD


async def _start_llm(config: EngineConfig, progress: Progress) -> LanguageModel:
    if config.llm == "embedded" and not config.llm_model.endswith(".gguf"):
        # Assemble and verify first, with progress; create_llm then finds the model ready at once.
        await asyncio.to_thread(ensure_model, config.llm_model, lambda m, f: progress("llm", m, f))
    llm = await asyncio.to_thread(create_llm, config)
    progress("llm", f"starting {llm.name}", None)
    await llm.start()
    return llm


async def _unload(loaded: list[Any]) -> None:
    """Close the engines that did load (the VAD's factory holds nothing)."""
    for engine in loaded:
        if isinstance(engine, type):
            continue
        if hasattr(engine, "aclose"):
            await engine.aclose()
        elif hasattr(engine, "close"):
            engine.close()


async def load_engines(config: EngineConfig, progress: Progress) -> Engines:
    """Load every engine; the blocking ones on worker threads, concurrently with the LLM's start."""
    loop = asyncio.get_running_loop()
    # Each engine loads on the worker thread it will run on: ONNX Runtime creates its thread pool
    # there, and it inherits that thread's (lowered) priority.
    stt_worker, tts_worker = engine_worker("stt", config.engine_nice), engine_worker("tts", config.engine_nice)
    turn_worker = engine_worker("turn", config.engine_nice)
    try:
        # Every loader finishes (none is left running unseen), then one failure unloads the others:
        # an embedded LLM's llama.cpp process must not run on, unused, beside a failed whisper.
        results = await asyncio.gather(
            loop.run_in_executor(stt_worker, _load_stt, config, progress),
            loop.run_in_executor(tts_worker, _load_tts, config, progress),
            asyncio.to_thread(_check_vad),
            _start_llm(config, progress),
            loop.run_in_executor(turn_worker, _load_turn_model, config, progress),
            return_exceptions=True,
        )
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            await _unload([r for r in results if not isinstance(r, BaseException)])
            raise failure
    except BaseException:
        for worker in (stt_worker, tts_worker, turn_worker):
            worker.shutdown(wait=False)
        raise
    stt, tts, vad_factory, llm, (turn_model, turn_missing) = cast(
        tuple[
            SpeechToText,
            TextToSpeech,
            Callable[[], VoiceActivityDetector],
            LanguageModel,
            tuple[TurnModel | None, str],
        ],
        results,
    )
    for component in ("stt", "tts", "vad", "llm") + (("turn",) if turn_model is not None else ()):
        progress(component, "ready", 1.0)
    health = EngineHealth()
    if callable(watch := getattr(llm, "watch", None)):  # an engine that supervises itself reports here
        watch(health.reporter("llm"))
    return Engines(
        stt=stt,
        tts=tts,
        llm=llm,
        vad_factory=vad_factory,
        take_turns=config.take_turns,
        turn_model=turn_model,
        turn_model_missing=turn_missing,
        stt_worker=stt_worker,
        tts_worker=tts_worker,
        turn_worker=turn_worker,
        llm_queue=LLMQueue(config.llm_parallel, config.llm_queue_wait_s, spare=config.spare_llm_slots()),
        health=health,
    )
