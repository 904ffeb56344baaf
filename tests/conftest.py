"""Shared fixtures: the real platform in its own process, and speech made with the project's voice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

REPO = Path(__file__).resolve().parent.parent
API_KEY = "test-key"


@dataclass(frozen=True)
class RunningPlatform:
    url: str
    gateway_url: str
    api_key: str
    process: subprocess.Popen[str]
    log_path: Path


def start_platform(tmp: Path, *extra: str, api_key: str = API_KEY, timeout: float = 180.0) -> RunningPlatform:
    """`conversimple-platform serve --port 0` in a subprocess; returns once it accepts calls."""
    log_path = tmp / "platform.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "platform_core.cli.main", "serve", "--port", "0", "--api-key", api_key, *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    gateway_url = ""
    for line in process.stdout:
        log.write(line)
        log.flush()
        if m := re.search(r"agents connect to (\S+)", line):
            gateway_url = m.group(1)
        if m := re.search(r"listening on (\S+)", line):
            # keep draining stdout so a chatty platform never blocks on a full pipe
            threading.Thread(target=_drain, args=(process, log), daemon=True).start()
            return RunningPlatform(m.group(1), gateway_url, api_key, process, log_path)
        if time.monotonic() > deadline:
            break
    stop_platform(process)
    raise RuntimeError(f"the platform did not start; its log:\n{log_path.read_text()}")


def _drain(process: subprocess.Popen[str], log: IO[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        log.flush()


def stop_platform(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def platform_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """One real platform (default engines, no agent) shared by the tests that only place calls."""
    running = start_platform(tmp_path_factory.mktemp("platform"))
    yield running
    stop_platform(running.process)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def platform_url(platform_server: RunningPlatform) -> str:
    return platform_server.url
