"""What the server needs from the process it serves (the platform): a small interface, so server/
depends on this module and not on `platform_core.platform` (which imports the server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from platform_core.config import PlatformConfig, ServerConfig
from platform_core.errors import StudioError
from platform_core.events import Event
from platform_core.protocol import GATEWAY_PATH
from platform_core.server.access import AccessGuard


class ServedAddress:
    """The addresses of a process that serves `config.server` on `_port` (the port it bound, once started):
    one process, a gateway node, a front door."""

    config: PlatformConfig
    _port: int

    @property
    def server_config(self) -> ServerConfig:
        """The server settings, the limits signalling enforces among them."""
        return self.config.server

    @property
    def url(self) -> str:
        return f"http://{self.config.server.host}:{self._port}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.config.server.host}:{self._port}{GATEWAY_PATH}"


class CallRefused(StudioError):
    """A call the host will not open; the caller is sent `message` and `hint`."""


class Unauthorized(CallRefused):
    """A call refused for its key or token: counted by the throttle on failed authentications."""


class AgentEndpoint(Protocol):
    """The agent gateway's side of the shared port."""

    def check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """None to accept the websocket handshake, else the HTTP response that refuses it."""
        ...

    async def handle_connection(self, connection: ServerConnection) -> None:
        """Serve one agent connection until it closes."""
        ...


class CallConversation(Protocol):
    @property
    def conversation_id(self) -> str: ...

    def submit_text(self, text: str) -> None:
        """A typed turn, answered like a spoken one."""
        ...

    async def wait_ended(self) -> None: ...


class CallHandle(Protocol):
    """One answered call."""

    @property
    def conversation(self) -> CallConversation: ...

    @property
    def answer_sdp(self) -> str:
        """The SDP answer to send back to the caller."""
        ...

    async def close(self, reason: str = ...) -> None: ...


class EventSource(Protocol):
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback` for every event until the returned function is called."""
        ...


class ServerHost(Protocol):
    """What `start_server` serves: the gateway, health, calls and the events of each call."""

    @property
    def gateway(self) -> AgentEndpoint: ...

    @property
    def bus(self) -> EventSource: ...

    @property
    def access(self) -> AccessGuard:
        """Host and Origin checks, page tokens and the failed-authentication throttle."""
        ...

    @property
    def server_config(self) -> ServerConfig:
        """The server settings; signalling enforces their limits (message size, depth, text rate, feed)."""
        ...

    def health(self) -> str:
        """The body of GET /healthz: "ok", "loading", "degraded: <reason>" or "failed: <reason>"."""
        ...

    def health_report(self) -> dict[str, Any]:
        """The same as JSON (GET /healthz?format=json): "status", "reason" and each engine's state."""
        ...

    async def open_call(self, offer_sdp: str, *, agent_id: str | None, api_key: str | None) -> CallHandle:
        """Answer a WebRTC offer with a new conversation; raises CallRefused with a hint."""
        ...
