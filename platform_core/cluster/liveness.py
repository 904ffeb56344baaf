"""`OwnerProbe`: while a worker waits on tool calls, it pings the nodes they went to.

A request already delivered to a node that then dies gets no "no responders" from the broker: it would
wait for its timeout. The broker drops a dead client's subscriptions as soon as its connection closes
(the kernel closes a killed process's socket), so a ping to the node's own subject is answered "no
responders" at once: the probe tells the worker (`on_gone`) within one period. A ping that merely times
out (a node busy, or the broker slow) proves nothing and is not reported; presence (cluster/presence.py)
is the slower backstop for a node whose machine vanished without closing its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from platform_core.cluster.subjects import Subjects

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

PROBE_EVERY_S = 0.25
PING_TIMEOUT_S = 1.0


class OwnerProbe:
    """Pings each node in `watch(nodes)` every `every_s` while the set is not empty."""

    def __init__(self, broker: Client, subjects: Subjects, every_s: float, on_gone: Callable[[str, str], None]) -> None:
        self._nc = broker
        self._subjects = subjects
        self._every_s = every_s
        self._on_gone = on_gone
        self._nodes: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._checking: dict[str, asyncio.Task[None]] = {}  # nodes a one-off `check` is pinging now

    def watch(self, nodes: set[str]) -> None:
        """The nodes that hold this worker's pending calls now (empty: stop pinging)."""
        self._nodes = set(nodes)
        if self._nodes and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    def check(self, node: str) -> None:
        """Ping `node` once now (an agent of its conversation appeared on another node: it may be failing
        over from a dead one, whose registration must then be released before the agent's new one)."""
        if node in self._checking:
            return
        task = self._checking[node] = asyncio.ensure_future(self._check(node))
        task.add_done_callback(lambda _t: self._checking.pop(node, None))

    async def _check(self, node: str) -> None:
        if await self._is_gone(node):
            self._nodes.discard(node)
            self._on_gone(node, "it stopped answering on the broker: no responders to a ping")

    async def aclose(self) -> None:
        self._nodes = set()
        for check in list(self._checking.values()):
            check.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._nodes:
            await asyncio.sleep(self._every_s)
            for node in list(self._nodes):
                if await self._is_gone(node):
                    self._nodes.discard(node)
                    self._on_gone(node, "it stopped answering on the broker: no responders to a ping")

    async def _is_gone(self, node: str) -> bool:
        from nats import errors as nats_errors

        if not self._nc.is_connected:
            return False  # our own connection is down: that says nothing about the node
        try:
            await self._nc.request(self._subjects.node_ping(node), b"{}", timeout=PING_TIMEOUT_S)
        except nats_errors.NoRespondersError:
            return True
        except (TimeoutError, nats_errors.Error) as exc:
            log.debug("ping to gateway node %s: %s", node, type(exc).__name__)
        return False
