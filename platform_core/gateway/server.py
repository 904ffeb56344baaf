"""A standalone websocket server for the gateway alone (tests, benchmarks, `conversimple-agent` demos).

The platform's own server calls `check_handshake` and `handle_connection` the same way.
"""

from __future__ import annotations

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from platform_core.gateway.gateway import AgentGateway
from platform_core.protocol import GATEWAY_PATH, SUBPROTOCOL, WS_MAX_SIZE


async def serve_gateway(gateway: AgentGateway, host: str = "127.0.0.1", port: int = 0) -> Server:
    """Start serving; `server.sockets[0].getsockname()[1]` is the port. Close with `server.close()`."""

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith(GATEWAY_PATH):
            return connection.respond(404, f"not found: agents connect to {GATEWAY_PATH}\n")
        return gateway.check_handshake(connection, request)

    return await serve(
        gateway.handle_connection,
        host,
        port,
        process_request=process_request,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        max_size=WS_MAX_SIZE,
        compression=None,  # tool calls are small; deflate would cost more latency than it saves
        ping_interval=20,
        ping_timeout=20,
    )
