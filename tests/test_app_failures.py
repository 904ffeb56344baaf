"""The app explains failures and survives them: a busy port, a damaged model file.

Each case runs the real app (offscreen) in its own process, with its own settings and cache folders;
this file is also that process's driver (`python -m tests.test_app_failures CASE`), which starts the
platform the way the window does and prints what the user would see as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_case(case: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_app_failures", case, *extra],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def test_a_busy_port_is_explained_and_the_window_stays(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        seen = run_case("start", tmp_path, "--port", str(busy.getsockname()[1]))
    assert seen["started"] is False
    assert "already in use" in seen["dialog"] and "port" in seen["dialog"].lower()
    assert "What to do" in seen["dialog"]  # what happened, and what to do about it
    assert seen["window_visible"]


@pytest.mark.slow
def test_a_damaged_model_is_repaired_or_explained(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    models = Path(os.environ.get("CONVERSIMPLE_CACHE_DIR", Path.home() / ".cache" / "conversimple-studio")) / "models"
    (cache / "models").mkdir(parents=True)
    whisper = cache / "models" / "ggml-tiny.en.bin"
    shutil.copy(models / "ggml-tiny.en.bin", whisper)
    with whisper.open("r+b") as fh:  # damage it in the middle, keeping its size
        fh.seek(whisper.stat().st_size // 2)
        fh.write(b"\0" * 4096)
    seen = run_case("start", tmp_path, "--port", "0", env={"CONVERSIMPLE_CACHE_DIR": str(cache)})
    # The store notices the damage (its hash), rebuilds the file from the packages, and the app gets ready.
    assert seen["started"] is True and seen["ready"] is True, seen


@pytest.mark.slow
def test_new_engine_and_port_settings_restart_the_platform(tmp_path: Path) -> None:
    seen = run_case("restart", tmp_path, "--port", "0")
    assert seen["started"] is True and seen["ready"] is True, seen
    # The platform came back on the new port with the new engine setting, and said so.
    assert seen["new_port"] == seen["asked_port"] != seen["old_port"], seen
    assert seen["stt_threads"] == 1 and seen["health"] == "ok\n", seen
    assert seen["status"].startswith("Ready") and f":{seen['asked_port']}/" in seen["agents_url"], seen
    assert seen["call_button_enabled"], seen


# --- the driver, in the app's own process ---------------------------------------------------------------


async def _until_ready(controller: Any) -> bool:
    for _ in range(1200):
        if controller.ready:
            return True
        await asyncio.sleep(0.1)
    return False


async def _restart_with_new_settings(studio: Any, seen: dict[str, Any]) -> None:
    """What pressing OK in Settings does after a new port and STT thread count (dialog.apply() is the
    only part left out: it copies the form into the same config)."""
    controller = studio.controller
    old = controller.platform
    seen["old_port"] = int(old.url.rsplit(":", 1)[1])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        seen["asked_port"] = probe.getsockname()[1]
    loaded_with = controller.platform_settings()
    controller.config.server.port = seen["asked_port"]
    controller.config.engines.stt_threads = 1
    assert controller.platform_settings() != loaded_with
    await controller.restart_platform()
    seen["ready"] = await _until_ready(controller)
    new = controller.platform
    seen["new_port"] = int(new.url.rsplit(":", 1)[1])
    seen["stt_threads"] = new.engines.stt.threads if new.engines is not None else None
    seen["health"] = new.health()
    seen["status"] = studio.window.engine_label.text()
    seen["agents_url"] = studio.window.url_label.text()
    seen["call_button_enabled"] = studio.window.call_button.isEnabled()


async def _drive(studio: Any, wait_ready: bool, restart: bool = False) -> dict[str, Any]:
    from PySide6.QtWidgets import QMessageBox

    studio.window.show()
    studio.window.build_panels()
    started = await studio.controller.start_platform()
    ready = False
    if started and wait_ready:
        for _ in range(1200):
            if studio.controller.ready:
                ready = True
                break
            await asyncio.sleep(0.1)
    boxes = [w for w in studio.app.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    seen = {
        "started": started,
        "ready": ready,
        "window_visible": studio.window.isVisible(),
        "status": studio.window.engine_label.text(),
        "dialog": " | ".join(b.text() for b in boxes),
    }
    if restart and ready:
        await _restart_with_new_settings(studio, seen)
    await studio.controller.shutdown()
    return seen


def _driver(argv: list[str]) -> int:
    from app.main import build, parse_args

    args = parse_args(argv[1:])
    studio = build(args)
    with studio.loop:
        seen = studio.loop.run_until_complete(_drive(studio, wait_ready=True, restart=argv[0] == "restart"))
    print(json.dumps(seen), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_driver(sys.argv[1:]))
