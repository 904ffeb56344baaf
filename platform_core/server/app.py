"""The platform's one port: the web page (GET /), WebRTC signalling (WS CALL_PATH, /call) and the agent
gateway (WS GATEWAY_PATH, /customer_sdk/websocket), served by a single websockets server."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from platform_core.protocol import CALL_PATH, GATEWAY_PATH, SUBPROTOCOL, WS_MAX_SIZE
from platform_core.resources import resource_path
from platform_core.server.host import ServerHost
from platform_core.server.signalling import handle_call

log = logging.getLogger(__name__)


class PortInUse(OSError):
    pass


def _page(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return Response(status.value, status.phrase, headers, body)


def _route(host: ServerHost) -> Callable[[ServerConnection, Request], Response | None]:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path.startswith(GATEWAY_PATH):
            return host.gateway.check_handshake(connection, request)
        if path == CALL_PATH:
            return None
        if path in ("/", "/index.html"):
            body = resource_path("web", "index.html").read_bytes()
            return _page(HTTPStatus.OK, body, "text/html; charset=utf-8")
        if path == "/healthz":
            return _page(HTTPStatus.OK, host.health().encode(), "text/plain; charset=utf-8")
        return _page(HTTPStatus.NOT_FOUND, f"no such page: {path}\n".encode(), "text/plain; charset=utf-8")

    return process_request


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # The Conversimple SDK offers phoenix-websocket; browsers and /call clients offer none.
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


async def start_server(served: ServerHost, host: str, port: int) -> Server:
    async def handler(connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0] if connection.request else ""
        if path.startswith(GATEWAY_PATH):
            await served.gateway.handle_connection(connection)
        elif path == CALL_PATH:
            await handle_call(connection, served)

    try:
        return await serve(
            handler,
            host,
            port,
            process_request=_route(served),
            select_subprotocol=_select_subprotocol,
            max_size=WS_MAX_SIZE,  # larger frames are read, then refused by the gateway with a reason
            compression=None,  # agents and callers send many small frames: deflate only costs time
            server_header="conversimple-platform",
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(exc.errno, f"port {port} on {host} is already in use") from exc
        raise
