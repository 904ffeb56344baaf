"""The platform's one port: the web page (GET /), WebRTC signalling (WS CALL_PATH, /call) and the agent
gateway (WS GATEWAY_PATH, /customer_sdk/websocket), served by a single websockets server.

Every request passes `AccessGuard` first (server/access.py): Host and Origin, then, on /call and the
gateway, the throttle on addresses that failed to authenticate."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from platform_core.protocol import CALL_PATH, GATEWAY_PATH, SUBPROTOCOL, WS_MAX_SIZE
from platform_core.resources import resource_path
from platform_core.server.access import AccessGuard, Refusal, remote_ip
from platform_core.server.host import ServerHost
from platform_core.server.signalling import handle_call

log = logging.getLogger(__name__)

PAGE_TOKEN_PATH = "/page-token"
"""A fresh token for the platform's own page (its first one is in the HTML); same-origin reads only."""


class PortInUse(OSError):
    pass


def _page(status: HTTPStatus, body: bytes, content_type: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _text(status: HTTPStatus, text: str, extra: Sequence[tuple[str, str]] = ()) -> Response:
    return _page(status, (text.rstrip("\n") + "\n").encode(), "text/plain; charset=utf-8", extra)


def _refuse(refusal: Refusal, path: str, remote: str) -> Response:
    log.info("refused %s from %s: %s", path, remote or "(unknown)", refusal.reason)
    status = HTTPStatus(refusal.status)
    extra = [("Retry-After", str(max(1, round(refusal.retry_after_s))))] if refusal.retry_after_s else []
    return _text(status, refusal.reason, extra)


# The page carries a token that places calls: no other site may frame it (clickjacking).
_NO_FRAMING = (("X-Frame-Options", "DENY"), ("Content-Security-Policy", "frame-ancestors 'none'"))


def _web_page(access: AccessGuard) -> Response:
    token, expires = access.tokens.mint()
    html = resource_path("web", "index.html").read_text(encoding="utf-8")
    html = html.replace("{{PAGE_TOKEN}}", token).replace("{{PAGE_TOKEN_EXPIRES}}", str(expires))
    return _page(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8", _NO_FRAMING)


def _page_token(access: AccessGuard) -> Response:
    token, expires = access.tokens.mint()
    body = json.dumps({"token": token, "expires": expires}).encode()
    return _page(HTTPStatus.OK, body, "application/json")


def _health_page(host: ServerHost, request: Request) -> Response:
    """Plain text by default; JSON with ?format=json or Accept: application/json. 503 while degraded."""
    report = host.health_report()
    status = HTTPStatus.SERVICE_UNAVAILABLE if report["status"] in ("degraded", "failed") else HTTPStatus.OK
    query = request.path.partition("?")[2]
    if "format=json" in query.split("&") or "application/json" in request.headers.get("Accept", ""):
        return _page(status, json.dumps(report).encode(), "application/json")
    return _page(status, host.health().encode(), "text/plain; charset=utf-8")


def _route(host: ServerHost) -> Callable[[ServerConnection, Request], Response | None]:
    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        access, remote = host.access, remote_ip(connection.remote_address)
        refusal = access.check(request.headers, connection.local_address)
        if refusal is None and (path.startswith(GATEWAY_PATH) or path == CALL_PATH):
            refusal = access.too_many_failures(remote)
        if refusal is not None:
            return _refuse(refusal, path, remote)
        if path.startswith(GATEWAY_PATH):
            return host.gateway.check_handshake(connection, request)
        if path == CALL_PATH:
            return None
        if path in ("/", "/index.html"):
            return _web_page(access)
        if path == PAGE_TOKEN_PATH:
            return _page_token(access)
        if path == "/healthz":
            return _health_page(host, request)
        return _text(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    return process_request


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    # The Conversimple SDK offers phoenix-websocket; browsers and /call clients offer none.
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


CallHandler = Callable[[ServerConnection], Awaitable[None]]
"""Serves one /call websocket (after the access checks); by default `handle_call` on the host's calls."""


async def start_server(served: ServerHost, host: str, port: int, *, call_handler: CallHandler | None = None) -> Server:
    """Serve `served` on host:port. `call_handler` replaces the signalling of /call (the cluster's front
    door relays it to a media worker); the access checks, the page and /healthz stay the same."""

    async def handler(connection: ServerConnection) -> None:
        path = connection.request.path.split("?", 1)[0] if connection.request else ""
        if path.startswith(GATEWAY_PATH):
            await served.gateway.handle_connection(connection)
        elif path == CALL_PATH:
            await (call_handler(connection) if call_handler else handle_call(connection, served))

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
