"""The platform, headless: engines, the agent gateway, WebRTC calls and their conversations.

This is the public entry point for the desktop app, the CLI, tests and benchmarks:

    platform = Platform(config)
    await platform.start()          # serves http://HOST:PORT, loads engines (EngineProgress events)
    ...                             # callers connect over WebRTC; everything shows up on platform.bus
    await platform.stop()
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from websockets.asyncio.server import Server

from platform_core.bus import EventBus
from platform_core.config import PlatformConfig
from platform_core.engines.base import EngineUnavailable, Int16Audio
from platform_core.engines.factory import load_engines
from platform_core.engines.runner import Engines
from platform_core.errors import StudioError
from platform_core.events import EngineProgress, ErrorOccurred
from platform_core.gateway import AgentGateway, AgentInfo
from platform_core.models.errors import ModelError
from platform_core.pipeline.conversation import Conversation
from platform_core.protocol import GATEWAY_PATH
from platform_core.server.app import PortInUse, start_server
from platform_core.server.host import CallRefused
from platform_core.transport.peer import CallPeer
from platform_core.watchdog import LoopWatchdog

log = logging.getLogger(__name__)


class PlatformError(StudioError, RuntimeError):
    """The platform cannot start or run. `hint` says what to do."""


@dataclass
class Call:
    """One WebRTC call: the peer (transport) and the conversation it carries (pipeline)."""

    conversation: Conversation
    peer: CallPeer

    @property
    def answer_sdp(self) -> str:
        return str(self.peer.pc.localDescription.sdp)

    async def close(self, reason: str = "hung up") -> None:
        await self.peer.close(reason)


class Platform:
    def __init__(self, config: PlatformConfig | None = None, bus: EventBus | None = None) -> None:
        self.config = config or PlatformConfig()
        self.bus = bus or EventBus()
        self.gateway = AgentGateway(
            self.bus, self.config.server.customers(), default_tool_timeout_s=self.config.server.tool_timeout_s
        )
        self.engines: Engines | None = None
        self.watchdog = LoopWatchdog(self.bus)
        self.calls: dict[str, Call] = {}
        self._server: Server | None = None
        self._engines_task: asyncio.Task[Engines] | None = None
        self._port = self.config.server.port
        self._call_watchers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.config.server.host}:{self._port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.config.server.host}:{self._port}{GATEWAY_PATH}"

    async def start(self, *, wait_for_engines: bool = True) -> None:
        """Serve on the configured port at once, then load the engines (EngineProgress on the bus).

        With `wait_for_engines=False` it returns as soon as the port is open (the GUI's way);
        calls are refused with a clear message until the engines are ready.
        """
        self.bus.bind_loop(asyncio.get_running_loop())
        self.watchdog.start()
        host, port = self.config.server.host, self.config.server.port
        try:
            self._server = await start_server(self, host, port)
        except PortInUse as exc:
            raise PlatformError(
                f"Cannot serve on {host}:{port}: the port is already in use.",
                "Stop the program that uses it, or choose another port (--port, or Settings).",
            ) from exc
        except OSError as exc:
            raise PlatformError(
                f"Cannot serve on {host}:{port}: {exc.strerror or exc}",
                "Check the host address and port in the settings.",
            ) from exc
        sockets = list(self._server.sockets)
        if sockets:
            self._port = sockets[0].getsockname()[1]
        self._engines_task = asyncio.ensure_future(self._load_engines())
        if wait_for_engines:
            await self.wait_ready()

    async def wait_ready(self) -> Engines:
        """The loaded engines; raises PlatformError if they failed to load."""
        assert self._engines_task is not None, "start() first"
        try:
            return await asyncio.shield(self._engines_task)
        except (EngineUnavailable, ModelError) as exc:
            raise PlatformError(exc.message, exc.hint) from exc

    async def _load_engines(self) -> Engines:
        def progress(component: str, message: str, fraction: float | None) -> None:
            self.bus.publish_threadsafe(
                EngineProgress(component=component, message=message, fraction=fraction, done=fraction == 1.0)
            )

        try:
            self.engines = await load_engines(self.config.engines, progress)
        except (EngineUnavailable, ModelError) as exc:
            self.bus.publish(ErrorOccurred(where="engines", message=exc.message, hint=exc.hint))
            raise
        return self.engines

    def health(self) -> str:
        return "ok\n" if self.engines is not None else "loading\n"

    # --- for hosts (the app, the self-test): what they need without reaching into the internals ---

    def agents(self) -> list[AgentInfo]:
        """The agents connected now (a snapshot; call it on the loop thread)."""
        return self.gateway.agents()

    def synthesize(self, text: str) -> AsyncIterator[Int16Audio]:
        """`text` spoken by the loaded voice, chunk by chunk, at `speech_rate`."""
        return self._loaded_engines().synthesize(text)

    @property
    def speech_rate(self) -> int:
        """The sample rate of `synthesize`'s audio."""
        return self._loaded_engines().tts.sample_rate

    @property
    def llm_name(self) -> str:
        """Which language model answers (its engine's name)."""
        return self._loaded_engines().llm.name

    def _loaded_engines(self) -> Engines:
        if self.engines is None:
            raise PlatformError("The engines are not loaded yet.", "await start() (or wait_ready()) first.")
        return self.engines

    def customer_for(self, api_key: str | None) -> str:
        customers = self.config.server.customers()
        if api_key is None:
            return customers.get(self.config.server.api_key, next(iter(customers.values())))
        if api_key not in customers:
            raise CallRefused("unauthorized: invalid API key", "use an API key configured on the platform")
        return customers[api_key]

    async def open_call(self, offer_sdp: str, *, agent_id: str | None, api_key: str | None) -> Call:
        """Start a conversation for a WebRTC caller; returns the call, its answer in `answer_sdp`."""
        if self.engines is None:
            if self._engines_task is not None and self._engines_task.done() and self._engines_task.exception():
                exc = self._engines_task.exception()
                if isinstance(exc, StudioError):
                    raise CallRefused(f"the engines failed to load: {exc.message}", exc.hint)
                raise CallRefused(f"the engines failed to load: {exc}", "see the platform's log")
            raise CallRefused("the engines are still loading", "wait until the platform reports ready")
        customer_id = self.customer_for(api_key)
        conversation = Conversation(
            conversation_id=f"conv_{uuid.uuid4().hex[:12]}",
            agent_id=agent_id,
            customer_id=customer_id,
            engines=self.engines,
            router=self.gateway,
            bus=self.bus,
            config=self.config,
        )
        peer = CallPeer(
            conversation.conversation_id,
            conversation.track,
            on_caller_track=conversation.attach_caller,
            on_closed=conversation.close,
        )
        call = Call(conversation, peer)
        try:
            await peer.answer(offer_sdp)
        except ValueError as exc:
            await call.close(f"bad offer: {exc}")
            raise CallRefused(f"the offer was refused: {exc}", "send a WebRTC offer with one audio track") from exc
        self.calls[conversation.conversation_id] = call
        self._call_watchers.add(task := asyncio.ensure_future(self._forget_when_ended(call)))
        task.add_done_callback(self._call_watchers.discard)
        return call

    async def _forget_when_ended(self, call: Call) -> None:
        await call.conversation.wait_ended()
        await call.close()
        self.calls.pop(call.conversation.conversation_id, None)

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            await call.close("platform stopped")
        await self.gateway.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._engines_task is not None:
            if not self._engines_task.done():
                self._engines_task.cancel()
            await asyncio.gather(self._engines_task, return_exceptions=True)
        if self.engines is not None:
            await self.engines.aclose()
            self.engines = None
        self.watchdog.stop()
