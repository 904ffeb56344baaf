"""Runs the blocking engines off the event loop: one worker thread per engine.

whisper.cpp and Piper are not safe to call from two threads at once, and on a 2-core machine
parallel calls would only slow each other down, so each engine gets a single dedicated worker;
conversations queue for it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from platform_core.engines.base import (
    FloatAudio,
    Int16Audio,
    LanguageModel,
    SpeechToText,
    TextToSpeech,
    VoiceActivityDetector,
)


@dataclass
class Engines:
    stt: SpeechToText
    tts: TextToSpeech
    llm: LanguageModel
    vad_factory: Callable[[], VoiceActivityDetector]
    _stt_worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="stt"), repr=False
    )
    _tts_worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="tts"), repr=False
    )

    async def transcribe(self, audio: FloatAudio) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._stt_worker, self.stt.transcribe, audio)

    async def synthesize(self, text: str) -> AsyncIterator[Int16Audio]:
        """Chunks of `text` as they are synthesized; stops the worker early when the consumer goes away."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[Int16Audio | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            try:
                for chunk in self.tts.synthesize(text):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except BaseException as exc:  # delivered to the consumer, raised there
                loop.call_soon_threadsafe(chunks.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, None)

        loop.run_in_executor(self._tts_worker, produce)
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    async def aclose(self) -> None:
        await self.llm.aclose()
        self._stt_worker.shutdown(wait=False, cancel_futures=True)
        self._tts_worker.shutdown(wait=False, cancel_futures=True)
        self.stt.close()
        self.tts.close()
