"""Runs the blocking engines off the event loop: one worker thread per engine.

whisper.cpp and Piper are not safe to call from two threads at once, and on a 2-core machine
parallel calls would only slow each other down, so each engine gets a single dedicated worker;
conversations queue for it.

With `take_turns` the engines share the cores by priority instead of contending for them: while
whisper transcribes or Piper synthesizes (work the caller is waiting for, or that the LLM's next
request needs) the embedded LLM's process is paused. Each engine then runs alone on every core,
which on 2 cores beats running them side by side on one core each: ggml's threads wait for each
other at every layer, so one busy core stalls them all (a prompt prefilled during a partial
transcription ran at 55 tok/s instead of ~200).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from platform_core.engines.base import (
    FloatAudio,
    Int16Audio,
    LanguageModel,
    PausableEngine,
    SpeechToText,
    TextToSpeech,
    TurnModel,
    VoiceActivityDetector,
)
from platform_core.engines.health import EngineHealth
from platform_core.engines.llm.queue import LLMQueue, QueuedLLM
from platform_core.engines.priority import lower_this_threads_priority


def engine_worker(name: str, nice: int = 0) -> ThreadPoolExecutor:
    """The single worker thread of one engine. With `nice`, its compute threads (ggml's, created per
    call, and ONNX Runtime's pool, created when the session loads on this thread) inherit the lower
    priority, while the event loop's thread keeps the normal one."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=lower_this_threads_priority, initargs=(nice,))


_T = TypeVar("_T")
WORKER_STUCK_S = 60.0


@dataclass
class Engines:
    stt: SpeechToText
    tts: TextToSpeech
    llm: LanguageModel
    vad_factory: Callable[[], VoiceActivityDetector]
    take_turns: bool = False
    # The end-of-turn model; None: turns end on silence alone (not installed, or not chosen).
    turn_model: TurnModel | None = None
    turn_model_missing: str = ""  # why there is none, for the health report and the log
    stt_worker: ThreadPoolExecutor = field(default_factory=lambda: engine_worker("stt"), repr=False)
    tts_worker: ThreadPoolExecutor = field(default_factory=lambda: engine_worker("tts"), repr=False)
    turn_worker: ThreadPoolExecutor = field(default_factory=lambda: engine_worker("turn"), repr=False)
    llm_queue: LLMQueue = field(default_factory=LLMQueue)
    health: EngineHealth = field(default_factory=EngineHealth)
    # A whisper or Piper job (queue wait included) running this long means its worker thread is stuck:
    # a thread cannot be killed or safely replaced (the engine is not thread-safe), so it is reported.
    worker_stuck_s: float = WORKER_STUCK_S

    _stt_busy: int = field(default=0, repr=False)  # transcriptions queued or running
    _final_waiting: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        # Every request (tool choice, reply, warm-up) takes its turn in the queue.
        if not isinstance(self.llm, QueuedLLM):
            self.llm = QueuedLLM(self.llm, self.llm_queue)

    async def transcribe(self, audio: FloatAudio) -> str:
        """The text of a turn. A partial transcription in progress gives way to it."""
        self._final_waiting.set()
        return await self._run_stt(self._final, audio)

    async def transcribe_partial(self, audio: FloatAudio) -> str | None:
        """Text of speech still going on, for display; None when the worker is busy or it gave way."""
        if self._stt_busy:
            return None  # a turn's transcription comes first; this one would only delay it
        return await self._run_stt(self._partial, audio)

    def _final(self, audio: FloatAudio) -> str:
        self._final_waiting.clear()
        return self.stt.transcribe(audio)

    def _partial(self, audio: FloatAudio) -> str | None:
        if self._final_waiting.is_set():
            return None
        text = self.stt.transcribe(audio, should_abort=self._final_waiting.is_set)
        return None if self._final_waiting.is_set() else text

    async def _run_stt(self, job: Callable[[FloatAudio], _T], audio: FloatAudio) -> _T:
        loop = asyncio.get_running_loop()
        self._stt_busy += 1
        try:
            future = loop.run_in_executor(self.stt_worker, self._llm_paused_during, job, audio)
            result: _T = await self._watched("stt", future)
            return result
        finally:
            self._stt_busy -= 1

    def _llm_paused_during(self, job: Callable[..., Any], *args: Any) -> Any:
        """Run `job` with the LLM paused when the engines take turns (on the engine's worker thread)."""
        paused = self.llm if self.take_turns and isinstance(self.llm, PausableEngine) else None
        if paused is not None:
            paused.pause()
        try:
            return job(*args)
        finally:
            if paused is not None:
                paused.resume()

    async def turn_completion(self, audio: FloatAudio) -> tuple[float, float]:
        """(probability that the turn in `audio` is complete, seconds the model took). Needs a turn model."""
        model = self.turn_model
        if model is None:
            raise RuntimeError("no turn model loaded")

        def judge() -> tuple[float, float]:
            started = time.perf_counter()
            probability = model.completion_probability(audio)
            return probability, time.perf_counter() - started

        loop = asyncio.get_running_loop()
        # Taking turns, the model queues behind whisper on its thread instead of running beside it:
        # whisper's two threads wait for each other at every layer, so a one-thread model beside them
        # made the pause's transcript ~60 ms later (124 -> 180-198 ms, 2 cores) for its own 40 ms.
        worker = self.stt_worker if self.take_turns else self.turn_worker
        job = loop.run_in_executor(worker, self._llm_paused_during, judge)
        result: tuple[float, float] = await self._watched("turn", job)
        return result

    async def synthesize(self, text: str, *, steady: bool = False) -> AsyncIterator[Int16Audio]:
        """Chunks of `text` as they are synthesized; stops the worker early when the consumer goes away.
        `steady`: the same audio for the same text (a caller's voice in a QA run)."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Int16Audio | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for chunk in self.tts.synthesize(text, steady=steady):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except BaseException as exc:  # delivered to the consumer, raised there
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        self._watched("tts", loop.run_in_executor(self.tts_worker, self._llm_paused_during, produce))
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def _watched(self, engine: str, job: asyncio.Future[_T]) -> asyncio.Future[_T]:
        """`job`, reported as a stuck worker ("failed") once it has run `worker_stuck_s`, "ok" when it ends."""
        loop = asyncio.get_running_loop()
        stuck = [False]

        def report_stuck() -> None:
            stuck[0] = True
            self.health.set(engine, "failed", f"one job has run for {self.worker_stuck_s:g} s: its worker is stuck")

        timer = loop.call_later(self.worker_stuck_s, report_stuck)

        def finished(_: asyncio.Future[_T]) -> None:
            timer.cancel()
            if stuck[0]:
                self.health.set(engine, "ok")

        job.add_done_callback(finished)
        return job

    async def aclose(self) -> None:
        await self.llm.aclose()
        self.stt_worker.shutdown(wait=False, cancel_futures=True)
        self.tts_worker.shutdown(wait=False, cancel_futures=True)
        self.turn_worker.shutdown(wait=False, cancel_futures=True)
        self.stt.close()
        self.tts.close()
        if self.turn_model is not None:
            self.turn_model.close()
