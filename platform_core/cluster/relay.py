"""The front door's half of a relayed call: open /call on a media worker, then carry the signalling.

`open_on_worker` sends the caller's offer (with the caller's key) to the worker's /call and reads its
first reply: the answer (its SDP carries the worker's ICE candidates, so the media goes straight from
the caller to the worker), or a refusal (`WorkerRefused`: busy, still loading, ...), or nothing because
the worker cannot be reached (`WorkerUnreachable`). `relay` then copies every message both ways until
either side ends; when the worker's connection drops without its `ended` (the process died), the
caller is told so in an `error` and an `ended` naming the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from platform_core.errors import StudioError
from platform_core.protocol import CALL_PATH, WS_MAX_SIZE

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # a worker that does not accept the websocket within this is skipped
ANSWER_TIMEOUT_S = 20.0  # the worker answers once aiortc has its candidates (about 0.1-1 s)
# Refusals another worker may not give: try the next one. Any other refusal (a bad key, a bad offer)
# would be the same everywhere: it goes to the caller.
RETRY_ON = ("busy", "the engines are still loading", "the engines failed to load")


class WorkerUnreachable(Exception):
    """The worker's /call could not be opened or it closed before answering."""


class WorkerRefused(StudioError):
    """The worker answered the offer with an error (`message`, `hint`)."""

    @property
    def another_may_take_it(self) -> bool:
        return self.message.startswith(RETRY_ON)


def call_url(worker_url: str) -> str:
    """ws://host:port/call from a worker's platform URL (http://host:port)."""
    parts = urlsplit(worker_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, CALL_PATH, "", ""))


async def _connect(url: str) -> ClientConnection:
    try:
        return await connect(url, open_timeout=CONNECT_TIMEOUT_S, max_size=WS_MAX_SIZE, compression=None, proxy=None)
    except InvalidStatus as exc:
        body = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
        raise WorkerUnreachable(f"HTTP {exc.response.status_code} on {url}{': ' + body if body else ''}") from exc
    except (InvalidHandshake, TimeoutError) as exc:
        raise WorkerUnreachable(f"no websocket on {url} within {CONNECT_TIMEOUT_S:g} s ({exc!r})") from exc
    except OSError as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror or str(exc)
        raise WorkerUnreachable(f"cannot connect to {url}: {why}") from exc


async def open_on_worker(worker_url: str, offer: dict[str, Any]) -> tuple[ClientConnection, dict[str, Any]]:
    """The worker's connection and its answer to `offer`; WorkerUnreachable or WorkerRefused."""
    ws = await _connect(call_url(worker_url))
    try:
        await ws.send(json.dumps(offer))
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            reply = json.loads(await ws.recv())
    except ConnectionClosed as exc:
        await ws.close()
        raise WorkerUnreachable(f"it closed /call before answering ({exc})") from exc
    except TimeoutError as exc:
        await ws.close()
        raise WorkerUnreachable(f"no answer to the offer within {ANSWER_TIMEOUT_S:g} s") from exc
    except ValueError as exc:
        await ws.close()
        raise WorkerUnreachable(f"it sent a malformed signalling message ({exc})") from exc
    if isinstance(reply, dict) and reply.get("type") == "answer":
        return ws, reply
    await ws.close()
    if isinstance(reply, dict) and reply.get("type") == "error":
        raise WorkerRefused(str(reply.get("message", "refused")), str(reply.get("hint", "")))
    raise WorkerUnreachable(f"it sent {str(reply)[:80]!r} instead of an answer")


def _is_ended(raw: str | bytes) -> bool:
    with contextlib.suppress(ValueError):
        message = json.loads(raw)
        return isinstance(message, dict) and message.get("type") == "ended"
    return False


async def _caller_to_worker(caller: ServerConnection, worker: ClientConnection) -> bool:
    """Copies the caller's messages; True when the caller left, False when the worker's connection failed."""
    with contextlib.suppress(ConnectionClosed):
        async for raw in caller:
            try:
                await worker.send(raw)
            except ConnectionClosed:
                return False
    return True


async def _worker_to_caller(caller: ServerConnection, worker: ClientConnection) -> bool:
    """Copies the worker's messages; True when its `ended` came through (it ended the call itself)."""
    ended = False
    with contextlib.suppress(ConnectionClosed):
        async for raw in worker:
            await caller.send(raw)
            ended = ended or _is_ended(raw)
    return ended


async def relay(caller: ServerConnection, worker: ClientConnection, worker_id: str) -> str:
    """Carry the call's signalling both ways until it ends; returns why it ended."""
    upstream = asyncio.ensure_future(_caller_to_worker(caller, worker))
    downstream = asyncio.ensure_future(_worker_to_caller(caller, worker))
    try:
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        if upstream.done() and upstream.result():  # the caller left: the worker ends the call as /call closes
            await worker.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(downstream, 5)
            return "the caller left"
        try:
            ended_by_worker = await asyncio.wait_for(downstream, 5)
        except TimeoutError:
            ended_by_worker = False
        if ended_by_worker:
            return "ended by the worker"
        return await _tell_worker_gone(caller, worker, worker_id)
    finally:
        for task in (upstream, downstream):
            task.cancel()
        await worker.close()
        await caller.close()


async def _tell_worker_gone(caller: ServerConnection, worker: ClientConnection, worker_id: str) -> str:
    code = worker.close_code
    why = f"media worker {worker_id} is gone: its signalling connection dropped (close code {code})"
    log.warning("a relayed call ended: %s", why)
    with contextlib.suppress(ConnectionClosed):
        hint = "call again: the front door places the next call on a live worker"
        await caller.send(json.dumps({"type": "error", "message": why, "hint": hint}))
        await caller.send(json.dumps({"type": "ended", "reason": why, "dropped_events": 0}))
    return why
