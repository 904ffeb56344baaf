"""The front door (`serve --role front`): the callers' one address in a cluster (docs/cluster.md).

It serves the web page, /healthz and /call with the platform's own server and access checks (Host,
Origin, the failure throttle), checks the caller's key itself, and places each call on the media worker
with the most free capacity as presence says (cluster/placement.py), relaying the signalling to that
worker's /call (cluster/relay.py). The caller's media goes straight to the worker. A worker that refuses
(busy, loading) or cannot be reached is skipped for the next one; no worker free: the caller is told
"busy" with how many workers there are. It loads no engine and serves no agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from platform_core.bus import EventBus
from platform_core.cluster.broker import BrokerHealth, connect_broker
from platform_core.cluster.placement import Placements, Unreachable, no_worker_free, rank, workers_of
from platform_core.cluster.presence import Member, Presence, open_bucket, read_members
from platform_core.cluster.relay import WorkerRefused, WorkerUnreachable, open_on_worker, relay
from platform_core.cluster.subjects import Subjects, check_node_id
from platform_core.config import PlatformConfig
from platform_core.exposure import PlatformError, check_exposure
from platform_core.server.access import AccessGuard, access_guard_for
from platform_core.server.app import PortInUse, start_server
from platform_core.server.callers import customer_for, is_page_token
from platform_core.server.host import CallHandle, CallRefused, ServedAddress
from platform_core.server.messages import Offer
from platform_core.server.signalling import open_or_refuse

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue
    from websockets.asyncio.server import Server

log = logging.getLogger(__name__)


class NoAgents:
    """The agents' endpoint of a front door: every agent is told where to go instead (503)."""

    def __init__(self, node_id: str) -> None:
        self.refusing = f"this is front door {node_id}: agents connect to a gateway node (serve --role gateway)"

    def check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(503, self.refusing + "\n")

    async def handle_connection(self, connection: ServerConnection) -> None:  # never reached: refused above
        await connection.close()


class FrontDoor(ServedAddress):
    """`await start()`, then callers use `url` (the page, /call); `await stop()`."""

    role = "front"

    def __init__(self, config: PlatformConfig, broker: str, *, node_id: str | None = None, prefix: str = "") -> None:
        self.config = config
        self.node_id = check_node_id(node_id or f"front-{secrets.token_hex(3)}")
        self.subjects = Subjects(prefix) if prefix else Subjects()
        self.broker = BrokerHealth(broker)
        self.bus = EventBus()  # nothing is published on it: the calls' events come from the workers
        self.gateway = NoAgents(self.node_id)
        self.access: AccessGuard = access_guard_for(config.server)
        self.placements = Placements()
        self.unreachable = Unreachable()
        self.relays: dict[str, str] = {}  # conversation id -> worker id, for the calls relayed now
        self.exposure_warning: str | None = None
        self._nc: Client | None = None
        self._bucket: KeyValue | None = None
        self._presence: Presence | None = None
        self._server: Server | None = None
        self._port = config.server.port

    async def start(self) -> None:
        self.bus.bind_loop(asyncio.get_running_loop())
        self.exposure_warning = check_exposure(self.config.server)
        self._nc = await connect_broker(self.broker.url, name=f"front {self.node_id}", health=self.broker)
        try:
            self._server = await start_server(
                self, self.config.server.host, self.config.server.port, call_handler=self.handle_call
            )
        except PortInUse as exc:
            where = f"{self.config.server.host}:{self.config.server.port}"
            raise PlatformError(
                f"Cannot serve on {where}: the port is already in use.", "Choose another --port."
            ) from exc
        self._port = next(iter(self._server.sockets)).getsockname()[1]
        self._presence = Presence(self._nc, self.subjects, self._member, watch="worker", on_gone=self._worker_gone)
        await self._presence.start()

    def _member(self) -> Member:
        return Member(self.node_id, self.role, self.url, len(self.relays), None, list(self.relays))

    def _worker_gone(self, worker: Member, why: str) -> None:
        log.info("media worker %s left the cluster (%s)", worker.id, why)

    def workers(self) -> list[Member]:
        """The workers as presence last said (refreshed every second)."""
        return workers_of(self._presence.members) if self._presence else []

    def health_report(self) -> dict[str, Any]:
        broker = self.broker.to_json()
        workers = self.workers()
        free = sum(max(0, (w.capacity or 0) - w.active) for w in workers)
        reason = broker["reason"] or ("" if workers else "no media worker in presence: every call is refused busy")
        return {
            "status": "ok" if broker["ok"] and workers else "degraded",
            "reason": reason,
            "role": self.role,
            "node": self.node_id,
            "cluster": broker,
            "workers": {w.id: {"active": w.active, "capacity": w.capacity, "url": w.url} for w in workers},
            "free_capacity": free,
            "unreachable": {w.id: self.unreachable.why[w.id] for w in workers if w.id in self.unreachable.why},
            "calls": {"relayed_now": len(self.relays), "placed": dict(self.placements.total)},
        }

    def health(self) -> str:
        report = self.health_report()
        return f"{report['status']}: {report['reason']}\n" if report["reason"] else f"{report['status']}\n"

    async def open_call(self, offer_sdp: str, *, agent_id: str | None, api_key: str | None) -> CallHandle:
        raise CallRefused("a front door answers no call itself", "its /call relays each call to a media worker")

    # --- /call ---------------------------------------------------------------------------------

    async def handle_call(self, connection: ServerConnection) -> None:
        """Check the caller, place the call on a worker and relay its signalling until it ends."""

        async def place(offer: Offer) -> tuple[Member, ClientConnection, dict[str, Any]]:
            return await self._place(offer, self._key_to_forward(offer.api_key))

        placed = await open_or_refuse(
            connection,
            self.config.server,
            self.access,
            place,
            failure="the front door failed to place the call",
            hint="see the front door's log",
        )
        if placed is not None:
            await self._relay(connection, *placed[1])

    def _key_to_forward(self, api_key: str | None) -> str:
        """The key the worker gets: the caller's own, or for a page token (this process's signature, which
        no worker can check) the main key of the token's customer."""
        customer_for(self.config.server, self.access.tokens, api_key)  # raises Unauthorized
        assert api_key is not None
        return self.config.server.main_key() if is_page_token(api_key) else api_key

    async def _place(self, offer: Offer, key: str) -> tuple[Member, ClientConnection, dict[str, Any]]:
        message = {"type": "offer", "sdp": offer.sdp, "agent_id": offer.agent_id, "api_key": key, "feed": offer.feed}
        workers = workers_of(await self._read_presence())
        tried: dict[str, str] = {}
        for candidate in rank(workers, self.placements, self.unreachable):
            # Counted at once: a call set up meanwhile ranks this worker with it (the scale bench saw 8 of
            # 10 overlapping set-ups land on one of 4 idle workers when only answered calls counted).
            reserved_at = self.placements.reserve(candidate.id)
            try:
                ws, answer = await open_on_worker(candidate.member.url, message)
            except WorkerUnreachable as exc:
                self.placements.release(candidate.id, reserved_at)
                self.unreachable.mark(candidate.member, str(exc))
                tried[candidate.id] = f"unreachable ({exc})"
                log.warning("media worker %s is unreachable, trying the next: %s", candidate.id, exc)
                continue
            except WorkerRefused as exc:
                self.placements.release(candidate.id, reserved_at)
                if not exc.another_may_take_it:  # every worker would say the same (keys, the offer)
                    raise CallRefused(f"media worker {candidate.id} refused the call: {exc.message}", exc.hint) from exc
                tried[candidate.id] = exc.message
                continue
            except BaseException:  # the caller left mid set-up (cancelled)
                self.placements.release(candidate.id, reserved_at)
                raise
            self.placements.confirm(candidate.id)
            return candidate.member, ws, answer
        raise no_worker_free(workers, tried)

    async def _read_presence(self) -> list[Member]:
        if self._nc is None or not self._nc.is_connected:
            raise CallRefused(
                f"the front door cannot see the media workers: {self.broker.to_json()['reason']}",
                "try again once the message broker is back (see this front door's /healthz)",
            )
        try:
            if self._bucket is None:
                self._bucket = await open_bucket(self._nc, self.subjects)
            return await read_members(self._bucket)
        except Exception as exc:  # the broker restarted without the bucket: open it again next time
            self._bucket = None
            raise CallRefused(
                f"the front door could not read the workers' presence ({type(exc).__name__}: {exc})",
                "try again in a moment; the workers write it every second",
            ) from exc

    async def _relay(
        self, connection: ServerConnection, worker: Member, ws: ClientConnection, answer: dict[str, Any]
    ) -> None:
        conversation = str(answer.get("conversation_id") or "")
        self.relays[conversation] = worker.id
        log.info("call %s placed on media worker %s", conversation, worker.id)
        try:
            with contextlib.suppress(ConnectionClosed):
                await connection.send(_with_worker(answer, worker))
            why = await relay(connection, ws, worker.id)
            log.info("call %s on media worker %s: %s", conversation, worker.id, why)
        finally:
            self.relays.pop(conversation, None)

    async def stop(self) -> None:
        if self._presence is not None:
            await self._presence.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._nc is not None:
            await self._nc.close()


def _with_worker(answer: dict[str, Any], worker: Member) -> str:
    """The worker's answer, naming the worker that serves the call."""
    return json.dumps({**answer, "worker": worker.id, "worker_url": worker.url})
