"""`conversimple-platform serve` on a port that is taken: it says so, names the port, and exits non-zero."""

from __future__ import annotations

import socket
import subprocess
import sys

from bench.harness import REPO


def test_serve_on_a_port_in_use_exits_with_a_message_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "platform_core.cli.main", "serve", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    error = result.stderr.strip().splitlines()
    assert error and error[0] == f"error: Cannot serve on 127.0.0.1:{port}: the port is already in use.", error
    assert "another port (--port" in result.stderr  # what to do about it
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout and "agents connect to" not in result.stdout
