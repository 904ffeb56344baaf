"""Scripted engines for the turn-logic tests (tests/test_conversation_logic.py).

The real engines are used everywhere else. Here they would make the tests slow and their outcome
depend on what whisper hears and what the model says; turn logic (barge-in, tool waits,
cancellation, endpointing) needs exact control of when the caller speaks, what the transcript is
and how long each stage takes. Each fake implements the engine's Protocol in platform_core.engines.base.

Synthetic "speech" is a tone: its amplitude picks the transcript (`ScriptedStt`), and any block
louder than silence is speech for `LoudnessVad`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from platform_core.audio import WEBRTC_RATE
from platform_core.engines.base import ChatMessage, FloatAudio, Int16Audio
from platform_core.engines.runner import Engines


def tone(seconds: float, amplitude: int, rate: int = WEBRTC_RATE, hz: float = 220.0) -> Int16Audio:
    """A sine of `seconds` at `amplitude` (int16 peak): synthetic speech."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def silence(seconds: float, rate: int = WEBRTC_RATE) -> Int16Audio:
    return np.zeros(int(seconds * rate), dtype=np.int16)


class LoudnessVad:
    """Silero's stand-in: the test decides exactly which blocks are speech (any tone), so endpointing
    is driven block by block instead of by a model's probabilities."""

    sample_rate = 16_000
    frame_samples = 512

    def speech_probability(self, frame: FloatAudio) -> float:
        return 1.0 if float(np.abs(frame).max()) > 0.02 else 0.0

    def reset(self) -> None:
        return None


@dataclass
class ScriptedStt:
    """whisper.cpp's stand-in: the transcript of an utterance is the text scripted for its amplitude
    (the nearest one), after `delay_s` of "decoding", so the tests know what was heard and when.
    Records each call: "final" or "partial" (partials pass `should_abort`)."""

    texts: dict[int, str]
    delay_s: float = 0.05
    sample_rate: int = 16_000
    calls: list[str] = field(default_factory=list)

    def transcribe(self, audio: FloatAudio, should_abort: Callable[[], bool] | None = None) -> str:
        self.calls.append("partial" if should_abort is not None else "final")
        time.sleep(self.delay_s)
        peak = float(np.abs(audio).max()) * 32768 if audio.size else 0.0
        return self.texts[min(self.texts, key=lambda amplitude: abs(amplitude - peak))]

    def close(self) -> None:
        return None


@dataclass
class WordTts:
    """Piper's stand-in: `word_s` of tone per word, after `delay_s` of "synthesis" per clause, so a
    clause's length (and the words a cut keeps) is known in advance."""

    word_s: float = 0.15
    delay_s: float = 0.0
    sample_rate: int = 16_000
    spoken: list[str] = field(default_factory=list)

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[Int16Audio]:
        time.sleep(self.delay_s)
        self.spoken.append(text)
        for _ in text.split():
            yield tone(self.word_s, 3000, rate=self.sample_rate)

    def close(self) -> None:
        return None


@dataclass
class ScriptedLlm:
    """The LLM's stand-in: `reply` (a function of the prompt) streamed word by word, `token_s` apart;
    with a JSON schema (tool choice), `tool_choice` (a function of the prompt) at once. With `llguidance`
    it reads the embedded llama.cpp's prefilled tool choice: with a grammar, `tool_choice` is the text
    after the prefill, streamed 8 characters every `token_s`. Records every prompt, how many replies
    were streamed to their end, and how many were closed before it (a cancelled answer)."""

    reply: Callable[[Sequence[ChatMessage]], str] = lambda messages: "All right."
    tool_choice: Callable[[Sequence[ChatMessage]], str] = lambda messages: '{"tool": "none"}'
    token_s: float = 0.01
    llguidance: bool = False
    name: str = "scripted"
    prompts: list[list[ChatMessage]] = field(default_factory=list)
    finished: int = 0
    abandoned: int = 0

    async def start(self) -> None:
        return None

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        self.prompts.append(list(messages))
        if json_schema is not None:
            yield self.tool_choice(messages)
            return
        if grammar is not None:
            choice = self.tool_choice(messages)
            for i in range(0, len(choice), 8):
                await asyncio.sleep(self.token_s)
                yield choice[i : i + 8]
            return
        words = self.reply(messages).split(" ")
        finished = False
        try:
            for i, word in enumerate(words):
                await asyncio.sleep(self.token_s)
                yield word if i == 0 else " " + word
            finished = True
            self.finished += 1
        finally:
            if not finished:
                self.abandoned += 1

    async def aclose(self) -> None:
        return None


def scripted_engines(stt: ScriptedStt, llm: ScriptedLlm | None = None, tts: WordTts | None = None) -> Engines:
    return Engines(stt=stt, tts=tts or WordTts(), llm=llm or ScriptedLlm(), vad_factory=LoudnessVad)
