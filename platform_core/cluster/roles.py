"""The roles of one program on a broker (`conversimple-platform serve --role …`, docs/cluster.md).

- `GatewayNode`: the agents' websocket endpoint (the platform's own server, its access checks and
  /healthz) and `ToolRouterService`; no engines, no calls (the page's calls are refused with a hint).
- `MediaWorker`: the `Platform` (voice loop, engines, calls) with `RemoteToolRouter` as its conversations'
  router; its agent endpoint refuses every agent, pointing them to a gateway node.

Both write their presence (cluster/presence.py) and report the broker on /healthz. `all`, the default, is
today's single process and never comes here: nothing on that path imports this module or `nats`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from platform_core.bus import EventBus
from platform_core.cluster.broker import DEFAULT_BROKER_URL, BrokerHealth, connect_broker
from platform_core.cluster.presence import Member, Presence
from platform_core.cluster.service import ToolRouterService
from platform_core.cluster.subjects import Subjects, check_node_id
from platform_core.cluster.worker import RemoteToolRouter
from platform_core.config import PlatformConfig, ServerConfig
from platform_core.exposure import PlatformError, check_exposure
from platform_core.gateway import AgentGateway
from platform_core.pipeline.tools import ToolRouter
from platform_core.platform import Platform
from platform_core.protocol import GATEWAY_PATH
from platform_core.server.access import access_guard_for
from platform_core.server.app import PortInUse, start_server
from platform_core.server.host import CallHandle, CallRefused, ServedAddress

if TYPE_CHECKING:
    from nats.aio.client import Client
    from websockets.asyncio.server import Server

log = logging.getLogger(__name__)

ROLES = ("all", "worker", "gateway", "front")  # front: cluster/front.py
BROKER_ENV = "CONVERSIMPLE_BROKER_URL"


def broker_url(explicit: str | None) -> str:
    """--broker, else $CONVERSIMPLE_BROKER_URL, else the local default."""
    return explicit or os.environ.get(BROKER_ENV) or DEFAULT_BROKER_URL


def _health_text(report: dict[str, Any]) -> str:
    return f"{report['status']}: {report['reason']}\n" if report["reason"] else f"{report['status']}\n"


async def _serve(host: Any, config: ServerConfig) -> Server:
    try:
        return await start_server(host, config.host, config.port)
    except PortInUse as exc:
        raise PlatformError(
            f"Cannot serve on {config.host}:{config.port}: the port is already in use.", "Choose another --port."
        ) from exc


class GatewayNode(ServedAddress):
    """A gateway node: `await start()`, then agents connect to `gateway_url`; `await stop()`."""

    role = "gateway"

    def __init__(self, config: PlatformConfig, broker: str, *, node_id: str | None = None, prefix: str = "") -> None:
        self.config = config
        self.bus = EventBus()
        self.gateway = AgentGateway(
            self.bus, config.server.customers(), default_tool_timeout_s=config.server.tool_timeout_s
        )
        self.access = access_guard_for(config.server)
        self.gateway.on_auth_failure = lambda remote, problem: self.access.failed(remote, GATEWAY_PATH, problem)
        self.node_id = check_node_id(node_id or f"gateway-{secrets.token_hex(3)}")
        self.subjects = Subjects(prefix) if prefix else Subjects()
        self.broker = BrokerHealth(broker)
        self.exposure_warning: str | None = None
        self._nc: Client | None = None
        self._server: Server | None = None
        self._service: ToolRouterService | None = None
        self._presence: Presence | None = None
        self._port = config.server.port

    async def start(self) -> None:
        self.bus.bind_loop(asyncio.get_running_loop())
        self.exposure_warning = check_exposure(self.config.server)
        self._nc = await connect_broker(self.broker.url, name=f"gateway {self.node_id}", health=self.broker)
        self._server = await _serve(self, self.config.server)
        self._port = next(iter(self._server.sockets)).getsockname()[1]
        self._service = ToolRouterService(
            self._nc, self.gateway, self.bus, subjects=self.subjects, node_id=self.node_id
        )
        await self._service.start()
        self._presence = Presence(self._nc, self.subjects, self._member, watch="worker", on_gone=self._worker_gone)
        await self._presence.start()

    def _worker_gone(self, worker: Member, why: str) -> None:
        if self._service is not None:
            self._service.end_conversations(worker.conversations, f"media worker {worker.id} is gone ({why})")

    def _member(self) -> Member:
        conversations = self._service.conversations if self._service else []
        agents = len([a for a in self.gateway.agents() if a.joined])
        return Member(self.node_id, "gateway", self.gateway_url, len(conversations), None, conversations, agents)

    def health_report(self) -> dict[str, Any]:
        broker = self.broker.to_json()
        agents = self.gateway.agents()
        return {
            "status": "ok" if broker["ok"] else "degraded",
            "reason": broker["reason"],
            "role": self.role,
            "node": self.node_id,
            "cluster": broker,
            "agents": len(agents),
            "conversations": len(self._service.conversations) if self._service else 0,
        }

    def health(self) -> str:
        return _health_text(self.health_report())

    async def open_call(self, offer_sdp: str, *, agent_id: str | None, api_key: str | None) -> CallHandle:
        raise CallRefused(
            "this is a gateway node: it serves agents, not calls",
            "place the call on a media worker (serve --role worker) or a platform serving --role all",
        )

    async def stop(self) -> None:
        if self._presence is not None:
            await self._presence.stop()
        if self._service is not None:
            await self._service.stop()
        await self.gateway.aclose()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._nc is not None:
            await self._nc.close()


class MediaWorker:
    """A media worker: the platform's calls and engines, its tool calls over the broker."""

    role = "worker"

    def __init__(self, config: PlatformConfig, broker: str, *, node_id: str | None = None, prefix: str = "") -> None:
        self.node_id = check_node_id(node_id or f"worker-{secrets.token_hex(3)}")
        self.subjects = Subjects(prefix) if prefix else Subjects()
        self.broker = BrokerHealth(broker)
        self.platform = Platform(config, attach=self)
        self.platform.gateway.refusing = (
            f"this is media worker {self.node_id}: agents connect to a gateway node (serve --role gateway)"
        )
        self.bus = self.platform.bus
        self._nc: Client | None = None
        self._router: RemoteToolRouter | None = None
        self._presence: Presence | None = None

    @property
    def router(self) -> ToolRouter:
        assert self._router is not None, "start() first"
        return self._router

    @property
    def url(self) -> str:
        return self.platform.url

    @property
    def exposure_warning(self) -> str | None:
        return self.platform.exposure_warning

    def health(self) -> dict[str, Any]:
        """The broker's state, for the platform's /healthz (`Attachment`)."""
        return {**self.broker.to_json(), "role": self.role, "node": self.node_id}

    async def start(self, *, wait_for_engines: bool = True) -> None:
        self._nc = await connect_broker(self.broker.url, name=f"worker {self.node_id}", health=self.broker)
        timeout = self.platform.config.server.tool_timeout_s
        self._router = RemoteToolRouter(self._nc, self.bus, subjects=self.subjects, default_tool_timeout_s=timeout)
        await self._router.start()
        await self.platform.start(wait_for_engines=False)
        router = self._router
        self._presence = Presence(
            self._nc, self.subjects, self._member, watch="gateway", on_gone=lambda m, why: router.node_gone(m.id, why)
        )
        await self._presence.start()
        if wait_for_engines:
            await self.platform.wait_ready()

    def _member(self) -> Member:
        p = self.platform
        calls = list(p.calls)
        return Member(self.node_id, "worker", p.url, p.calls_in_progress, p.config.server.max_calls, calls)

    async def stop(self) -> None:
        if self._presence is not None:
            await self._presence.stop()
        await self.platform.stop()
        if self._router is not None:
            await self._router.aclose()
        if self._nc is not None:
            await self._nc.close()
