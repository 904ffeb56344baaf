"""Entry point of the packaged app (PyInstaller): logging to a file, then the headless flags or the window.

The hidden `--run-agent` (agents started by the self-test) logs to its own stderr only; everything
else also appends to `user_data_dir()/logs/conversimple-studio.log`, which QA sends back with a bug.
"""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import sys


def _start_logging() -> None:
    from platform_core.config import user_data_dir

    folder = user_data_dir() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(folder / "conversimple-studio.log", maxBytes=2 << 20,
                                                       backupCount=3, encoding="utf-8")
    except OSError as exc:  # a read-only home still runs, it only loses the log file
        print(f"conversimple-studio: cannot write logs to {folder}: {exc}", file=sys.stderr)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, handlers=[handler, console])
    logging.getLogger("conversimple").info("started: %s", " ".join(sys.argv))
    # A native crash (segfault in an engine) leaves its Python stack in the log instead of nothing.
    if handler.stream is not None:
        faulthandler.enable(handler.stream, all_threads=True)


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] not in (["--run-agent"], ["--run-llm-server"]):
        _start_logging()
    from app.self_test import headless_command  # no Qt import: works without a display or libGL

    code = headless_command(argv)
    if code is not None:
        return code
    from app.main import main as studio_main

    return studio_main(argv)


if __name__ == "__main__":
    sys.exit(main())
