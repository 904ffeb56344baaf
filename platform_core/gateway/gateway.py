"""`AgentGateway`: the asyncio shell around `GatewayCore` and the platform's `ToolRouter`.

It owns the sockets, the futures of pending calls and the housekeeping timer; every decision is the
core's. The platform's server calls `check_handshake` from `process_request` and `handle_connection`
as the websocket handler for paths under `GATEWAY_PATH` (platform_core/protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from platform_core.bus import EventBus
from platform_core.gateway.core import GatewayCore, credentials
from platform_core.gateway.schema import clamp_timeout
from platform_core.gateway.state import (
    AgentInfo,
    Close,
    Effect,
    Finish,
    PendingCall,
    Publish,
    Send,
    ToolsChanged,
)
from platform_core.pipeline.tools import ToolOutcome, ToolSpec
from platform_core.protocol import SUBPROTOCOL

log = logging.getLogger(__name__)


class AgentGateway:
    """Routes the platform's tool calls to connected agents (implements `ToolRouter`)."""

    def __init__(
        self,
        bus: EventBus,
        customers: dict[str, str],
        default_tool_timeout_s: float = 30.0,
        *,
        tool_timeouts: dict[str, float] | None = None,
        idle_timeout_s: float = 90.0,
        join_timeout_s: float = 10.0,
    ) -> None:
        self._bus = bus
        self._core = GatewayCore(
            customers,
            default_tool_timeout_s=default_tool_timeout_s,
            tool_timeouts=tool_timeouts,
            idle_timeout_s=idle_timeout_s,
            join_timeout_s=join_timeout_s,
        )
        self._sockets: dict[str, ServerConnection] = {}
        self._waiters: dict[str, asyncio.Future[ToolOutcome]] = {}
        self._tools_ready: dict[str, asyncio.Event] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        # Told (remote IP, problem) of every wrong or missing key at the handshake (the platform throttles).
        self.on_auth_failure: Callable[[str, str], None] | None = None
        self.refusing: str | None = None  # set: every agent is refused at the handshake (503) with this reason

    # --- server integration ----------------------------------------------------------------------------

    def check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse a wrong or missing API key at the HTTP handshake (401) — except for SDK clients
        (they offer the phoenix-websocket subprotocol): conversimple-sdk 0.2.4 with websockets >= 14 does
        not recognise an HTTP 401 as permanent and would retry forever, so those are accepted and refused
        at channel join with reason "unauthorized: ...", which opens the SDK's circuit breaker."""
        if self.refusing is not None:
            return connection.respond(503, self.refusing + "\n")
        key, _ = credentials(request.path, request.headers)
        customer, problem = self._core.authenticate(key)
        if customer is not None:
            return None
        if self.on_auth_failure is not None:
            address = connection.remote_address
            self.on_auth_failure(str(address[0]) if address else "", problem)
        offered = ",".join(request.headers.get_all("Sec-WebSocket-Protocol"))
        if SUBPROTOCOL in offered:
            return None
        return connection.respond(401, problem + "\n")

    async def handle_connection(self, connection: ServerConnection) -> None:
        """Serve one agent connection until it closes."""
        loop = asyncio.get_running_loop()
        address = connection.remote_address
        remote = f"{address[0]}:{address[1]}" if address else ""
        request = connection.request
        path, headers = (request.path, request.headers) if request else ("", None)
        conn_id, effects = self._core.open(path, remote, loop.time(), headers)
        self._sockets[conn_id] = connection
        self._apply(effects)
        self._ensure_housekeeping()
        reason = "connection closed"
        try:
            async for message in connection:
                try:
                    effects = self._core.receive(conn_id, message, loop.time())
                except Exception:  # a bug must cost one frame, not the connection or the server
                    log.exception("agent gateway failed on a frame from %s", conn_id)
                    continue
                await self._run(effects)
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        finally:
            if connection.close_code not in (None, 1000, 1001):
                reason = f"closed with code {connection.close_code} {connection.close_reason}".strip()
            self._sockets.pop(conn_id, None)
            self._apply(self._core.closed(conn_id, reason, loop.time()))

    def agents(self) -> list[AgentInfo]:
        """Connected agents, for the GUI (a snapshot; call it on the loop thread)."""
        return self._core.snapshot(time.monotonic())  # the loop's clock is time.monotonic()

    async def disconnect(self, connection_id: str, reason: str = "disconnected by the platform") -> None:
        """Close one agent's connection (code 1012: SDKs reconnect and register again)."""
        ws = self._sockets.get(connection_id)
        if ws is not None:
            await ws.close(1012, reason)

    def tool_timeout(self, conversation_id: str, name: str) -> float:
        """The timeout a call of `name` gets in the conversation: the platform's for the tool, else what its
        agent declared, else the default (a gateway node tells remote workers, docs/cluster.md)."""
        return self._core.timeout_for(conversation_id, name)

    def set_tool_timeout(self, name: str, seconds: float) -> None:
        """Platform-side timeout for one tool (takes precedence over what the agent declares)."""
        self._core.tool_timeouts[name] = clamp_timeout(seconds)

    async def aclose(self) -> None:
        """Cancel pending calls and close every agent connection (shutdown)."""
        now = asyncio.get_running_loop().time()
        for call_id in list(self._core.calls):
            self._apply(self._core.cancel_call(call_id, now, "the platform is shutting down"))
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await asyncio.gather(
            *(ws.close(1001, "platform shutting down") for ws in list(self._sockets.values())),
            return_exceptions=True,
        )

    # --- ToolRouter ------------------------------------------------------------------------------------

    async def conversation_started(self, conversation_id: str, agent_id: str | None, customer_id: str) -> None:
        await self._run(
            self._core.start_conversation(conversation_id, agent_id, customer_id, asyncio.get_running_loop().time())
        )

    async def conversation_ended(self, conversation_id: str) -> None:
        await self._run(self._core.end_conversation(conversation_id, asyncio.get_running_loop().time()))
        self._tools_ready.pop(conversation_id, None)

    def conversation_served_elsewhere(self, conversation_id: str, where: str | None) -> None:
        """An agent of another platform process (`where`, e.g. a cluster's gateway node) owns the conversation:
        this gateway's owner loses it and later registrations are refused (`conversation_owned`); None
        lifts that (the other owner is gone)."""
        self._apply(self._core.served_elsewhere(conversation_id, where))

    def tools_for(self, conversation_id: str) -> list[ToolSpec]:
        return self._core.tools_for(conversation_id)

    def has_agents(self, conversation_id: str) -> bool:
        return self._core.has_agents(conversation_id)

    async def wait_for_tools(self, conversation_id: str, timeout: float) -> list[ToolSpec]:
        if not self._core.tools_for(conversation_id) and conversation_id in self._core.conversations:
            ready = self._tools_ready.setdefault(conversation_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout)
        return self._core.tools_for(conversation_id)

    async def call_tool(
        self, conversation_id: str, name: str, arguments: dict[str, Any], *, turn_id: int | None = None
    ) -> ToolOutcome:
        loop = asyncio.get_running_loop()
        call, effects = self._core.start_call(conversation_id, name, arguments, turn_id, loop.time())
        if not isinstance(call, PendingCall):
            self._apply(effects)
            return call
        future: asyncio.Future[ToolOutcome] = loop.create_future()
        self._waiters[call.call_id] = future
        try:
            async with asyncio.timeout_at(call.deadline):
                await self._run(effects)
                return await future
        except TimeoutError:
            expired = self._core.expire_call(call.call_id, loop.time())
            self._apply(expired)
            outcome = next((e.outcome for e in expired if isinstance(e, Finish)), None)
            if outcome is None and future.done() and not future.cancelled():
                outcome = future.result()  # the answer won the race against the deadline
            return outcome or ToolOutcome(call.call_id, name, call.arguments, "timeout", error=f"{name} timed out")
        except asyncio.CancelledError:  # barge-in or hang-up: the call is abandoned, not failed
            self._apply(self._core.cancel_call(call.call_id, loop.time(), "cancelled by the platform"))
            raise
        finally:
            self._waiters.pop(call.call_id, None)

    def cancel_tool_calls(self, conversation_id: str, *, turn_id: int | None = None, reason: str = "") -> None:
        now = asyncio.get_running_loop().time()
        self._apply(self._core.cancel_calls(conversation_id, turn_id, now, reason or "cancelled by the platform"))

    # --- effects ---------------------------------------------------------------------------------------

    async def _run(self, effects: list[Effect]) -> None:
        """Apply effects, sending inline when they all go to one connection (the fast path: no task);
        a broadcast is sent by tasks so one slow reader cannot hold up the others."""
        targets = {e.connection_id for e in effects if isinstance(e, Send)}
        if len(targets) != 1:
            self._apply(effects)
            return
        self._apply([e for e in effects if not isinstance(e, Send)])
        ws = self._sockets.get(targets.pop())
        for effect in effects:
            if isinstance(effect, Send) and ws is not None:
                await self._send(ws, effect.text)

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                ws = self._sockets.get(effect.connection_id)
                if ws is not None:
                    # send() writes synchronously in its first step, so tasks keep the frames in order
                    self._spawn(self._send(ws, effect.text))
            elif isinstance(effect, Publish):
                self._bus.publish(effect.event)
            elif isinstance(effect, Finish):
                future = self._waiters.get(effect.outcome.call_id)
                if future is not None and not future.done():
                    future.set_result(effect.outcome)
            elif isinstance(effect, ToolsChanged):
                if (ready := self._tools_ready.get(effect.conversation_id)) is not None:
                    ready.set()
            elif isinstance(effect, Close):
                ws = self._sockets.get(effect.connection_id)
                if ws is not None:
                    self._spawn(ws.close(effect.code, effect.reason))

    @staticmethod
    async def _send(ws: ServerConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ensure_housekeeping(self) -> None:
        if self._housekeeping is None or self._housekeeping.done():
            self._housekeeping = asyncio.create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        period = max(0.05, min(1.0, self._core.idle_timeout_s / 4, self._core.join_timeout_s / 4))
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            self._apply(self._core.tick(loop.time()))
