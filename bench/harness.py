"""What the benchmarks (and the tests) run against: the real platform in its own process, and the
public conversimple-sdk in its own venv. Lives here, not in tests/, so the bench imports nothing from tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from platform_core.config import user_cache_dir

REPO = Path(__file__).resolve().parent.parent
API_KEY = "test-key"  # what the local platforms started here accept


@dataclass(frozen=True)
class RunningPlatform:
    url: str
    gateway_url: str
    api_key: str
    process: subprocess.Popen[str]
    log_path: Path


def start_platform(
    tmp: Path,
    *extra: str,
    api_key: str = API_KEY,
    timeout: float = 180.0,
    module: str = "platform_core.cli.main",
    log_name: str = "platform.log",
) -> RunningPlatform:
    """`conversimple-platform serve --port 0` in a subprocess; returns once it accepts calls. `module`: another
    entry point taking the same arguments (bench/standin_engines.py); `log_name`: its log's file in `tmp`."""
    log_path = tmp / log_name
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", module, "serve", "--port", "0", "--api-key", api_key, *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        bufsize=1,
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


# --- conversimple-sdk 0.2.4 in its own virtual environment -------------------------------------------

CONVERSIMPLE = "conversimple-sdk==0.2.4"


def compat_venv() -> Path:
    """A venv with the public conversimple-sdk, created on first use and reused (user cache dir)."""
    home = Path(os.environ.get("CONVERSIMPLE_COMPAT_VENV", user_cache_dir() / "compat-venv-conversimple-0.2.4"))
    python = home / "bin" / "python"
    marker = home / ".installed"
    if marker.exists() and python.exists():
        return home
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", CONVERSIMPLE],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker.write_text(CONVERSIMPLE + "\n")
    return home


def save_result(path: str | Path, result: object) -> Path:
    """A bench's figures as JSON at `path` (its folder made), said on stdout."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"saved {out}")
    return out
