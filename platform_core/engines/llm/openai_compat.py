"""OpenAI-compatible chat backend: llama.cpp's server, vLLM, LM Studio, OpenAI itself.

Streams `/v1/chat/completions` over server-sent events with one long-lived `httpx.AsyncClient`
(a fresh client per request cost ~50 ms of time to first token in measurements; a kept-alive
connection costs ~5 ms). Stopping iteration early closes the connection, which makes llama.cpp
cancel the generation, so a barge-in frees the server's single slot at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import httpx

from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm.errors import LLMConnectionLost, LLMError

log = logging.getLogger(__name__)

KEY_SETTING = "llm_api_key"
URL_SETTING = "llm_url"


def _root_url(base_url: str) -> str:
    """Accept "http://host:port", ".../v1" or ".../v1/"; endpoints are appended as "/v1/..."."""
    root = base_url.strip().rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class OpenAICompatibleLLM:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        name: str = "openai",
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 3.0,
    ) -> None:
        self.name = name
        self.model = model
        self.base_url = _root_url(base_url)
        self._api_key = api_key
        # read = the longest silence allowed between two streamed chunks (covers prompt processing).
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client: httpx.AsyncClient | None = None
        self._closing: set[asyncio.Future[None]] = set()  # orphaned connections being closed
        self._llama_cpp = False  # set by start(): llama.cpp accepts extra fields such as cache_prompt

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        # Off the loop: httpx builds an SSL context (reads the CA bundle), a 100 ms stall measured.
        self._client = await asyncio.to_thread(
            httpx.AsyncClient, base_url=self.base_url, headers=headers, timeout=self._timeout
        )
        try:
            models = await self._list_models()
        except BaseException:
            await self.aclose()
            raise
        self._llama_cpp = any(m.get("owned_by") == "llamacpp" for m in models)
        ids = {m.get("id") for m in models} | {a for m in models for a in m.get("aliases", [])}
        if self.model and ids and self.model not in ids:
            await self.aclose()
            raise EngineUnavailable(
                f"The LLM server at {self.base_url} has no model {self.model!r}",
                f"set llm_model to one of: {', '.join(sorted(str(i) for i in ids))}",
            )

    async def _list_models(self) -> list[dict[str, Any]]:
        assert self._client is not None
        try:
            response = await self._client.get("/v1/models")
        except httpx.HTTPError as exc:
            raise EngineUnavailable(
                f"Cannot reach the LLM server at {self.base_url} ({type(exc).__name__}: {exc})",
                f"start the server or change the {URL_SETTING} setting",
            ) from exc
        try:
            self._check_status(response)
            data = response.json().get("data", [])
            return [m for m in data if isinstance(m, dict)]
        except (LLMError, ValueError, AttributeError) as exc:
            raise EngineUnavailable(
                f"{self.base_url} does not answer like an OpenAI-compatible server: {exc}",
                f"check the {URL_SETTING} setting",
            ) from exc

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise EngineUnavailable(
                f"The LLM server at {self.base_url} rejected the API key (HTTP {response.status_code})",
                f"check the {KEY_SETTING} setting",
            )
        if response.status_code >= 400:
            raise LLMError(f"LLM server error HTTP {response.status_code}: {response.text[:300]}")

    def _payload(
        self, messages: Sequence[ChatMessage], json_schema: dict[str, Any] | None, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messages": [m.to_openai() for m in messages],
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if self.model:
            payload["model"] = self.model
        if json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": json_schema, "strict": True},
            }
        if self._llama_cpp:
            payload["cache_prompt"] = True  # reuse the KV cache of the unchanged prompt prefix
        return payload

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
            raise LLMConnectionLost(f"{self.name}: not connected (start() was not called, or it was closed)")
        payload = self._payload(messages, json_schema, max_tokens, temperature)
        if grammar is not None:
            if not self._llama_cpp:
                raise LLMError(
                    f"{self.name}: a grammar needs a llama.cpp server",
                    "a bug: only the embedded llama.cpp is sent grammars; please report it with the log",
                )
            payload["grammar"] = grammar  # llama.cpp's own field
        stream = self._stream(payload)
        try:
            async for delta in stream:
                yield delta
        finally:
            await stream.aclose()  # now, not when collected: closing the connection stops llama.cpp's generation
            self._close_orphaned_connections()

    async def _stream(self, payload: dict[str, Any]) -> AsyncGenerator[str, None]:
        for attempt in (1, 2):
            client = self._client
            if client is None:  # closed meanwhile (the embedded server's supervisor, after its death)
                raise LLMConnectionLost(f"{self.name}: the connection to the LLM server was closed")
            started = False
            try:
                async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._check_status(response)
                    started = True
                    async for line in response.aiter_lines():
                        delta = _parse_sse_line(line)
                        if delta:
                            yield delta
                return
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # A kept-alive connection the server had already closed fails before any response
                # (seen intermittently with llama.cpp's server): nothing was generated, so retry once.
                if started or attempt == 2:
                    raise LLMConnectionLost(f"Lost the LLM server at {self.base_url}: {exc}") from exc
                log.info("retrying on a fresh connection after %s", exc)
            except httpx.TimeoutException as exc:
                raise LLMError(f"The LLM server at {self.base_url} timed out ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise LLMConnectionLost(f"Lost the LLM server at {self.base_url}: {type(exc).__name__}: {exc}") from exc

    def _close_orphaned_connections(self) -> None:
        """httpcore 1.0.9 (encode/httpcore#1093, unfixed upstream): a request cancelled after its connection
        was made but before it was sent leaves that connection in the pool, owned by no request, never idle,
        never reused or reaped. Every barge-in or hang-up that lands there held one socket more (55 over
        1,010 calls in the signalling fuzz) and, at `max_connections`, every later request would wait for
        the pool. Such connections are closed here, after each request; the pool's own are left alone."""
        pool = getattr(getattr(self._client, "_transport", None), "_pool", None)
        connections, requests = getattr(pool, "_connections", None), getattr(pool, "_requests", None)
        if not isinstance(connections, list) or not isinstance(requests, list):
            return  # another httpcore: nothing known to reap
        owned = {id(request.connection) for request in requests}
        for connection in list(connections):
            if id(connection) in owned or connection.is_idle() or connection.is_closed():
                continue
            connections.remove(connection)
            task = asyncio.ensure_future(connection.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _parse_sse_line(line: str) -> str:
    """The text delta in one SSE line ("" for comments, keep-alives, role-only chunks and [DONE])."""
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if not data or data == "[DONE]":
        return ""
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise LLMError(f"Malformed stream chunk from the LLM server: {data[:200]}") from exc
    if "error" in chunk:
        raise LLMError(f"LLM server error: {chunk['error']}")
    if isinstance(timings := chunk.get("timings"), dict):  # llama.cpp's own account, in the last chunk
        log.info(
            "llm: prompt %s tokens in %.0f ms (%s cached), %s tokens generated in %.0f ms",
            timings.get("prompt_n"),
            timings.get("prompt_ms", 0),
            timings.get("cache_n"),
            timings.get("predicted_n"),
            timings.get("predicted_ms", 0),
        )
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""
