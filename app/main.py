"""`conversimple-studio`: the desktop app. The window opens first; the platform starts behind it.

conversimple-studio [--input-wav FILE] [--port N]
conversimple-studio --self-test     (no window: one scripted call, see app/self_test.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import qasync
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.app_settings import AppSettings, app_settings_path, load_app_settings
from app.bridge import EventBridge
from app.controller import AppController
from app.main_window import MainWindow
from app.viewmodels.session import SessionModel
from platform_core import EventBus, PlatformConfig, load_settings, settings_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="conversimple-studio", description="Talk to voice agents and see why.")
    parser.add_argument("--input-wav", type=Path, help="use this WAV file as the microphone (reproducible runs)")
    parser.add_argument("--port", type=int, help="serve agents and callers on this port (default from settings)")
    parser.add_argument("--settings", type=Path, help=f"settings file (default {settings_path()})")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="no window: place one scripted spoken call through the engines and report",
    )
    # For measurements and tests: print how long the window took to appear, then quit.
    parser.add_argument("--quit-after-shown", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(list(argv) if argv is not None else None)


def _process_age() -> float:
    """Seconds since this process started (so the figure includes interpreter and imports)."""
    try:
        import psutil

        return time.time() - psutil.Process().create_time()
    except Exception:
        return time.monotonic() - _IMPORTED_AT


_IMPORTED_AT = time.monotonic()


@dataclass
class Studio:
    """Everything `main` wires together (tests drive the same objects)."""

    app: QApplication
    loop: qasync.QEventLoop
    bus: EventBus
    session: SessionModel
    bridge: EventBridge
    window: MainWindow
    controller: AppController
    startup_problems: list[tuple[str, str]]


def build(args: argparse.Namespace) -> Studio:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Conversimple Studio")
    # Closing the window must not stop the event loop: `run` still hangs up, stops the platform and saves
    # the settings on it, then returns (Qt's default quit stopped the loop: a traceback, nothing saved).
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    problems: list[tuple[str, str]] = []
    try:
        config = load_settings(args.settings)
    except ValueError as exc:
        config, problems = PlatformConfig(), [*problems, ("Settings reset", str(exc))]
    app_path = args.settings.with_name("app.json") if args.settings else app_settings_path()
    try:
        app_settings = load_app_settings(app_path)
    except ValueError as exc:
        app_settings, problems = AppSettings(), [*problems, ("Desktop settings reset", str(exc))]
    if args.port:
        config.server.port = args.port
    bus = EventBus()
    session = SessionModel()
    bridge = EventBridge()
    bridge.attach(bus)
    bridge.event_received.connect(session.apply)
    bridge.levels.connect(session.apply_levels)
    window = MainWindow(session, defer_panels=True)
    controller = AppController(
        window, session, bus, config, app_settings, input_wav=args.input_wav, settings_path=args.settings
    )
    return Studio(app, loop, bus, session, bridge, window, controller, problems)


async def run(studio: Studio, quit_after_shown: bool = False) -> int:
    window = studio.window
    closed = asyncio.get_running_loop().create_future()
    window.closing.connect(lambda: None if closed.done() else closed.set_result(None))
    window.show()
    shown = asyncio.get_running_loop().create_future()
    QTimer.singleShot(0, lambda: None if shown.done() else shown.set_result(_process_age()))
    print(f"window shown {await shown:.2f} s after launch", file=sys.stderr, flush=True)
    window.build_panels()
    if quit_after_shown:
        print(f"panels built {_process_age():.2f} s after launch", file=sys.stderr, flush=True)
        return 0
    for title, message in studio.startup_problems:
        window.show_failure(title, message, modal=False)
    if studio.controller.input_wav is not None and not studio.controller.input_wav.exists():
        window.show_failure(
            "WAV file not found",
            f"{studio.controller.input_wav} does not exist.",
            "Choose one with File > Use a WAV file as the microphone.",
        )
        studio.controller.set_input_wav(None)
    started = asyncio.ensure_future(studio.controller.start_platform())
    await closed
    if not started.done():
        started.cancel()
    await asyncio.gather(started, return_exceptions=True)
    await studio.controller.shutdown()
    studio.controller.save_settings()
    studio.bridge.detach()
    return 0


def missing_screen() -> str | None:
    """Why no window can open here (Qt would only abort with a cryptic plugin error), or None."""
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "Conversimple Studio needs a screen, and this session has none (DISPLAY and WAYLAND_DISPLAY are "
        "not set).\nRun it in a desktop session, or use the headless platform instead: "
        "`conversimple-platform serve` (then a browser or `conversimple-platform call`), "
        "`conversimple-platform demo`, or `conversimple-studio --self-test`."
    )


def main(argv: Sequence[str] | None = None) -> int:
    from app.self_test import headless_command

    code = headless_command(sys.argv[1:] if argv is None else argv)  # --self-test: no QApplication
    if code is not None:
        return code
    args = parse_args(argv)
    if (problem := missing_screen()) is not None:
        print(problem, file=sys.stderr)
        return 2
    if args.input_wav is not None:
        args.input_wav = args.input_wav.resolve()
    studio = build(args)
    signal.signal(signal.SIGINT, lambda *_: studio.window.close())  # Ctrl+C in the terminal closes cleanly
    with studio.loop:
        return studio.loop.run_until_complete(run(studio, args.quit_after_shown))


if __name__ == "__main__":
    sys.exit(main())
