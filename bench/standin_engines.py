"""STAND-IN ENGINES for the cluster's scale bench (bench/cluster_scale.py): NOT the real engines.

    .venv/bin/python -m bench.standin_engines serve --role worker --broker nats://HOST:PORT [serve's options]

Runs `conversimple-platform serve` exactly as the product does (every option, every role), except that a
media worker's `Platform` gets these fast stand-ins instead of loading whisper, llama.cpp, Piper and
Silero: the voice loop, WebRTC, the signalling, the front door's relay, presence and every tool call over
NATS are the real code; only the engines' own work is gone. A bench run on them therefore measures the
cluster's costs (and WebRTC's), never the engines'. The stand-ins (modelled on tests/fake_engines.py,
which the bench may not import):

- VAD: speech is any block louder than silence (the bench's callers send silence and type their turns).
- STT: "" at once (typed turns never reach it).
- LLM: no model. The tool choice is `{"tool": "echo", "arguments": {"value": W}}` when the caller's last
  message is "echo W" and the conversation has a tool named echo, else `{"tool": "none"}`; the reply
  is "Done." (or "Done: <the tool's result>."), one word every 2 ms. 64 slots: it is never the queue.
- TTS: 0.1 s of a quiet tone per word, made at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import numpy as np

from platform_core.engines.base import ChatMessage, FloatAudio, Int16Audio
from platform_core.engines.llm.queue import LLMQueue
from platform_core.engines.runner import Engines

STANDIN_LLM_SLOTS = 64
_ECHO = re.compile(r"\becho (\w+)", re.IGNORECASE)


class StandInVad:
    sample_rate = 16_000
    frame_samples = 512

    def speech_probability(self, frame: FloatAudio) -> float:
        return 1.0 if frame.size and float(np.abs(frame).max()) > 0.02 else 0.0

    def reset(self) -> None:
        return None


class StandInStt:
    sample_rate = 16_000

    def transcribe(self, audio: FloatAudio, should_abort: Callable[[], bool] | None = None) -> str:
        return ""

    def close(self) -> None:
        return None


class StandInTts:
    sample_rate = 16_000

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[Int16Audio]:
        t = np.arange(int(0.1 * self.sample_rate)) / self.sample_rate
        word = (300 * np.sin(2 * np.pi * 220.0 * t)).astype(np.int16)
        for _ in text.split():
            yield word

    def close(self) -> None:
        return None


def _tool_names(schema: dict[str, Any]) -> set[str]:
    branches = schema.get("anyOf", [])
    return {str(b.get("properties", {}).get("tool", {}).get("const")) for b in branches if isinstance(b, dict)}


class StandInLlm:
    name = "stand-in (no model)"

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
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if json_schema is not None:
            match = _ECHO.findall(last_user.splitlines()[-1] if last_user else "")
            if match and "echo" in _tool_names(json_schema):
                yield json.dumps({"tool": "echo", "arguments": {"value": match[-1]}})
            else:
                yield json.dumps({"tool": "none"})
            return
        last = messages[-1] if messages else None
        words = ["Done", "with", "it."] if last is not None and last.role == "tool" else ["Done."]
        for i, word in enumerate(words):
            await asyncio.sleep(0.002)
            yield word if i == 0 else " " + word

    async def aclose(self) -> None:
        return None


def standin_engines() -> Engines:
    """The stand-ins as the platform's `Engines` (the real runner, queue and health around them)."""
    return Engines(
        stt=StandInStt(),
        tts=StandInTts(),
        llm=StandInLlm(),
        vad_factory=StandInVad,
        llm_queue=LLMQueue(STANDIN_LLM_SLOTS),
    )


async def load_standin_engines(config: object, progress: Callable[[str, str, float | None], None]) -> Engines:
    """In place of `platform_core.engines.factory.load_engines`: the stand-ins, at once."""
    for component in ("stt", "tts", "vad", "llm"):
        progress(component, "ready (stand-in)", 1.0)
    return standin_engines()


def main(argv: list[str] | None = None) -> int:
    """`conversimple-platform` with the stand-in engines: its `Platform` loads these instead."""
    import platform_core.platform as platform_module
    from platform_core.cli.main import main as platform_main

    setattr(platform_module, "load_engines", load_standin_engines)  # noqa: B010 (the one seam, on purpose)
    return platform_main(argv)


if __name__ == "__main__":
    sys.exit(main())
