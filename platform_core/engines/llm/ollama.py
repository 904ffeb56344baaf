"""Ollama backend through the official `ollama` AsyncClient (native /api/chat, `format=` for schemas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import ollama

from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm.errors import LLMError

DEFAULT_HOST = "http://127.0.0.1:11434"
_HINT = "start `ollama serve` or change the LLM setting"


class OllamaLLM:
    def __init__(self, model: str, host: str = DEFAULT_HOST, *, timeout_s: float = 30.0) -> None:
        self.model = model
        self.host = host or DEFAULT_HOST
        self.name = f"ollama:{model}"
        self._timeout = httpx.Timeout(timeout_s, connect=3.0)
        self._client: ollama.AsyncClient | None = None

    async def start(self) -> None:
        client = await asyncio.to_thread(ollama.AsyncClient, host=self.host, timeout=self._timeout)  # SSL set-up
        try:
            listed = await client.list()
        except (ConnectionError, httpx.HTTPError) as exc:
            await _close(client)
            raise EngineUnavailable(f"Cannot reach Ollama at {self.host}", _HINT) from exc
        except ollama.ResponseError as exc:
            await _close(client)
            raise EngineUnavailable(
                f"Ollama at {self.host} answered HTTP {exc.status_code}: {exc.error}", _HINT
            ) from exc
        names = {m.model for m in listed.models if m.model}
        if self.model not in names and f"{self.model}:latest" not in names:
            await _close(client)
            raise EngineUnavailable(
                f"Ollama at {self.host} has no model {self.model!r}", f"run `ollama pull {self.model}`"
            )
        self._client = client

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        if self._client is None:
            raise LLMError(f"{self.name}: start() was not called")
        if grammar is not None:
            raise LLMError(
                f"{self.name}: Ollama takes no llguidance grammar",
                "a bug: only the embedded llama.cpp is sent grammars; please report it with the log",
            )
        try:
            stream = await self._client.chat(
                model=self.model,
                messages=[m.to_openai() for m in messages],
                stream=True,
                format=json_schema,
                options={"num_predict": max_tokens, "temperature": temperature},
            )
            async for part in stream:
                if part.message.content:
                    yield part.message.content
        except (ConnectionError, httpx.ConnectError) as exc:
            raise EngineUnavailable(f"Lost Ollama at {self.host}", _HINT) from exc
        except httpx.TimeoutException as exc:
            raise LLMError(f"Ollama at {self.host} timed out") from exc
        except ollama.ResponseError as exc:
            raise LLMError(f"Ollama error HTTP {exc.status_code}: {exc.error}") from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close(client)


async def _close(client: ollama.AsyncClient) -> None:
    await client.close()  # type: ignore[no-untyped-call]  # ollama's close() has no annotations
