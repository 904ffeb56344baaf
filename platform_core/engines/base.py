"""One small interface per engine kind. Backends live one per file beside this module.

STT, TTS, VAD and turn-model backends are blocking: the voice loop runs them on worker threads so the event
loop (and the GUI that shares it) never stalls. LLM backends are async because every one of them
streams over HTTP, even the embedded llama.cpp server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from platform_core.errors import StudioError

FloatAudio = npt.NDArray[np.float32]  # mono, -1..1
Int16Audio = npt.NDArray[np.int16]  # mono PCM


class VoiceActivityDetector(Protocol):
    """Speech probability of fixed-size frames of 16 kHz mono audio. Stateful: one per conversation."""

    sample_rate: int
    frame_samples: int

    def speech_probability(self, frame: FloatAudio) -> float: ...

    def reset(self) -> None: ...


class SpeechToText(Protocol):
    sample_rate: int  # the rate `transcribe` expects (16 kHz)

    def transcribe(self, audio: FloatAudio, should_abort: Callable[[], bool] | None = None) -> str:
        """Text of one utterance. Blocking and CPU-heavy: call from a worker thread.

        `should_abort`, polled while decoding, gives up early (the result is then meaningless)."""
        ...

    def close(self) -> None: ...


class TextToSpeech(Protocol):
    sample_rate: int  # the rate of the chunks `synthesize` yields

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[Int16Audio]:
        """Audio chunks for `text`, first chunk as early as possible. Blocking: run on a worker thread.

        `steady`: the same audio for the same text every time (no random variation), for callers' voices
        in QA runs, tests and benches, so that a run can be repeated exactly."""
        ...

    def close(self) -> None: ...


class TurnModel(Protocol):
    """Whether the caller has finished their turn, judged from their audio (not only the silence)."""

    sample_rate: int  # the rate `completion_probability` expects (16 kHz)

    def completion_probability(self, audio: FloatAudio) -> float:
        """Probability (0..1) that the turn is complete, from its audio so far (ending now).
        Blocking: call from a worker thread."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str

    def to_openai(self) -> dict[str, Any]:
        # Tool results go to the model as user-visible context: small models handle that better than
        # the "tool" role, and every backend accepts it. (As a system note the 0.5B model repeated the
        # note word for word as its answer to the next turn: bench/llm_tool_reply.py.)
        if self.role == "tool":
            return {"role": "user", "content": f"[tool result] {self.content}"}
        return {"role": self.role, "content": self.content}


class LanguageModel(Protocol):
    name: str

    async def start(self) -> None:
        """Load or connect. Raises EngineUnavailable with a hint when it cannot."""
        ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        """Text deltas of the assistant's reply; with `json_schema`, output constrained to that schema.

        `grammar` (an llguidance grammar) is for models whose `llguidance` attribute is True (the embedded
        llama.cpp); others raise LLMError. A last message from the assistant is the start of its answer
        (prefill): the deltas continue it."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PausableEngine(Protocol):
    """An engine in its own process that can be paused, so other engines get its cores for a while."""

    def pause(self) -> None:
        """Stop computing until the matching resume(); calls nest."""
        ...

    def resume(self) -> None: ...


class EngineUnavailable(StudioError, RuntimeError):
    """An engine could not start. `hint` tells the user what to do about it."""
