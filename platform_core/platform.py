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
from typing import Any, Protocol

from websockets.asyncio.server import Server

from platform_core.bus import EventBus
from platform_core.config import PlatformConfig, user_cache_dir
from platform_core.engines.base import EngineUnavailable, Int16Audio
from platform_core.engines.factory import load_engines
from platform_core.engines.health import EngineStatus
from platform_core.engines.runner import Engines
from platform_core.errors import StudioError
from platform_core.events import EngineHealthChanged, EngineProgress, ErrorOccurred
from platform_core.exposure import PlatformError as PlatformError  # re-exported: callers import it from here
from platform_core.exposure import check_exposure
from platform_core.gateway import AgentGateway, AgentInfo
from platform_core.heap import release_free_memory
from platform_core.models.errors import ModelError
from platform_core.pipeline.conversation import Conversation
from platform_core.pipeline.prompt_cache import PromptWarmer
from platform_core.pipeline.tools import ToolRouter
from platform_core.protocol import GATEWAY_PATH
from platform_core.server.access import access_guard_for
from platform_core.server.app import PortInUse, start_server
from platform_core.server.callers import customer_for
from platform_core.server.host import CallRefused, ServedAddress
from platform_core.transport.offer import BadOffer, OfferLimits, check_offer
from platform_core.transport.peer import CallPeer
from platform_core.watchdog import LoopWatchdog

log = logging.getLogger(__name__)


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


class Attachment(Protocol):
    """What a cluster role adds (platform_core/cluster/roles.py): the conversations' tool router in place
    of the platform's own gateway, and its broker's health for /healthz."""

    @property
    def router(self) -> ToolRouter: ...

    def health(self) -> dict[str, Any]:
        """At least "ok" (bool) and "reason"; not ok makes the platform "degraded"."""
        ...


class Platform(ServedAddress):
    def __init__(
        self, config: PlatformConfig | None = None, bus: EventBus | None = None, *, attach: Attachment | None = None
    ) -> None:
        self.config = config or PlatformConfig()
        self.attachment = attach
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
        self.access = access_guard_for(self.config.server)
        self.gateway.on_auth_failure = lambda remote, problem: self.access.failed(remote, GATEWAY_PATH, problem)
        self.exposure_warning: str | None = None  # set by start() when the port is reachable from other machines
        self._opening = 0  # calls admitted and being answered, not yet in `calls`
        self._warmer: PromptWarmer | None = None

    async def start(self, *, wait_for_engines: bool = True) -> None:
        """Serve on the configured port at once, then load the engines (EngineProgress on the bus).

        With `wait_for_engines=False` it returns as soon as the port is open (the GUI's way);
        calls are refused with a clear message until the engines are ready.
        """
        self.bus.bind_loop(asyncio.get_running_loop())
        self.watchdog.start()
        host, port = self.config.server.host, self.config.server.port
        self.exposure_warning = check_exposure(self.config.server)
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
        self.engines.health.subscribe(self._engine_health_changed)
        self._warmer = PromptWarmer(self.engines, self.config, user_cache_dir() / "tool-sets.json")
        self.bus.subscribe(self._warmer.on_event)
        self._warmer.start({agent.customer_id for agent in self.agents()})
        return self.engines

    def _engine_health_changed(self, engine: str, status: EngineStatus) -> None:
        self.bus.publish_threadsafe(
            EngineHealthChanged(
                engine=engine,
                state=status.state,
                reason=status.reason,
                restart_s=status.last_restart_s if status.state == "ok" else None,
            )
        )
        if status.state != "ok":
            self.bus.publish_threadsafe(
                ErrorOccurred(
                    where=engine,
                    message=f"The {engine} engine is {status.state}: {status.reason}",
                    hint="The platform restarts it; calls wait for it meanwhile (see /healthz)."
                    if engine == "llm"
                    else "It recovers when the stuck job ends; if it does not, restart the platform.",
                )
            )

    def health_report(self) -> dict[str, Any]:
        """The platform's health: "loading", "ok", "degraded" (an engine restarting or failed, or a cluster
        role's broker unreachable: the reason says which and why) or "failed" (the engines could not
        load); each engine's state, and a cluster role's under "cluster"."""
        report = self._engines_report()
        if self.attachment is not None:
            cluster = report["cluster"] = self.attachment.health()
            if not cluster["ok"] and report["status"] in ("ok", "degraded"):
                report["status"] = "degraded"
                report["reason"] = "; ".join(r for r in (report["reason"], cluster["reason"]) if r)
        return report

    def _engines_report(self) -> dict[str, Any]:
        if self.engines is None:
            task = self._engines_task
            exc = task.exception() if task is not None and task.done() and not task.cancelled() else None
            if exc is None:
                return {"status": "loading", "reason": "", "engines": {}}
            reason = exc.message if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            return {"status": "failed", "reason": f"the engines failed to load: {reason}", "engines": {}}
        problems = self.engines.health.problems()
        return {
            "status": "degraded" if problems else "ok",
            "reason": "; ".join(problems),
            "engines": {
                name: {
                    "state": s.state,
                    "reason": s.reason,
                    "restarts": s.restarts,
                    "last_restart_s": s.last_restart_s,
                }
                for name, s in self.engines.health.snapshot().items()
            },
            "llm_queue": self.engines.llm_queue.snapshot(),
            "turn_detection": self._turn_detection(),
            "calls": {"in_progress": self.calls_in_progress, "max_calls": self.config.server.max_calls},
        }

    def _turn_detection(self) -> dict[str, str]:
        """How turns end: by the turn model, or by silence (chosen, or the model is missing: why)."""
        chosen = self.config.voice.turn_detection
        engines = self.engines
        if chosen == "smart-turn" and engines is not None and engines.turn_model is None:
            return {"mode": "silence", "reason": f"turn model unavailable: {engines.turn_model_missing}"}
        return {"mode": chosen, "reason": ""}

    def health(self) -> str:
        report = self.health_report()
        return f"{report['status']}: {report['reason']}\n" if report["reason"] else f"{report['status']}\n"

    # --- for hosts (the app, the self-test): what they need without reaching into the internals ---

    def agents(self) -> list[AgentInfo]:
        """The agents connected now (a snapshot; call it on the loop thread)."""
        return self.gateway.agents()

    def synthesize(self, text: str, *, steady: bool = False) -> AsyncIterator[Int16Audio]:
        """`text` spoken by the loaded voice, chunk by chunk, at `speech_rate` (`steady`: the same audio
        for the same text every time)."""
        return self._loaded_engines().synthesize(text, steady=steady)

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

    def customer_for(self, api_key: object) -> str:
        """The customer whose API key (or the page's token: the default customer) places a call;
        raises Unauthorized saying what is wrong."""
        return customer_for(self.config.server, self.access.tokens, api_key)

    async def open_call(self, offer_sdp: str, *, agent_id: str | None, api_key: str | None) -> Call:
        """Start a conversation for a WebRTC caller; returns the call, its answer in `answer_sdp`.

        Refused (CallRefused, nothing left behind) while the engines load, for a wrong key, when
        `max_calls` calls are in progress, and for an offer that is too big, has more than one audio
        section or that aiortc cannot parse or answer."""
        customer_id = self.customer_for(api_key)  # first: nothing is told to a caller without a key
        engines = self._engines_for_calls()
        self._admit()
        self._opening += 1  # counted from here, so concurrent openings cannot overshoot max_calls
        try:
            return await self._answer(offer_sdp, engines, agent_id=agent_id, customer_id=customer_id)
        finally:
            self._opening -= 1

    def _engines_for_calls(self) -> Engines:
        if self.engines is not None:
            return self.engines
        if self._engines_task is not None and self._engines_task.done() and self._engines_task.exception():
            exc = self._engines_task.exception()
            if isinstance(exc, StudioError):
                raise CallRefused(f"the engines failed to load: {exc.message}", exc.hint)
            raise CallRefused(f"the engines failed to load: {exc}", "see the platform's log")
        raise CallRefused("the engines are still loading", "wait until the platform reports ready")

    @property
    def calls_in_progress(self) -> int:
        """The calls admitted: those in `calls` and those still being answered."""
        return len(self.calls) + self._opening

    def _admit(self) -> None:
        """Admission control: a clear "busy" before any engine work, not a slow failure later."""
        in_progress, limit = self.calls_in_progress, self.config.server.max_calls
        if in_progress >= limit:
            raise CallRefused(
                f"busy: {in_progress} calls in progress, the limit is {limit}",
                "try again when a call has ended (the limit is max_calls in the server settings)",
            )

    async def _answer(self, offer_sdp: str, engines: Engines, *, agent_id: str | None, customer_id: str) -> Call:
        limits = self.config.server
        try:
            check_offer(
                offer_sdp, OfferLimits(limits.max_sdp_bytes, limits.max_audio_sections, limits.max_media_sections)
            )
        except BadOffer as exc:
            raise CallRefused(f"the offer was refused: {exc.message}", exc.hint) from exc
        conversation = Conversation(
            conversation_id=f"conv_{uuid.uuid4().hex[:12]}",
            agent_id=agent_id,
            customer_id=customer_id,
            engines=engines,
            router=self.attachment.router if self.attachment else self.gateway,
            bus=self.bus,
            config=self.config,
        )
        peer = CallPeer(
            conversation.conversation_id,
            conversation.track,
            on_caller_track=conversation.attach_caller,
            on_closed=conversation.close,
            connect_timeout_s=limits.connect_timeout_s,
        )
        call = Call(conversation, peer)
        try:
            await peer.answer(offer_sdp)
        except BadOffer as exc:
            await call.close(f"bad offer: {exc.message}")
            raise CallRefused(f"the offer was refused: {exc.message}", exc.hint) from exc
        self.calls[conversation.conversation_id] = call
        self._call_watchers.add(task := asyncio.ensure_future(self._forget_when_ended(call)))
        task.add_done_callback(self._call_watchers.discard)
        return call

    async def _forget_when_ended(self, call: Call) -> None:
        await call.conversation.wait_ended()
        await call.close()
        self.calls.pop(call.conversation.conversation_id, None)
        # What the call freed stays in glibc's arenas otherwise, counted in RSS (heap.py).
        await asyncio.to_thread(release_free_memory)

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
        if self._warmer is not None:
            await self._warmer.aclose()
        if self.engines is not None:
            await self.engines.aclose()
            self.engines = None
        self.watchdog.stop()
