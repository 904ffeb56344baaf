"""`conversimple-platform serve`: on a port that is taken it says so, names the port, and exits non-zero;
its flags reach the platform's settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness import REPO
from platform_core.cli.main import _config_from_args, build_parser


def test_serve_on_a_port_in_use_exits_with_a_message_naming_it(tmp_path: Path) -> None:
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
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},  # its install key: not the user's settings
        )
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    error = result.stderr.strip().splitlines()
    assert error and error[0] == f"error: Cannot serve on 127.0.0.1:{port}: the port is already in use.", error
    assert "another port (--port" in result.stderr  # what to do about it
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stdout and "agents connect to" not in result.stdout


def test_serve_max_calls_sets_the_admission_limit(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    serve = ["serve", "--api-key", "a-key-for-this-test"]  # a key given: the settings file is not read
    assert _config_from_args(parser.parse_args(serve)).server.max_calls == 4  # the platform's default
    assert _config_from_args(parser.parse_args([*serve, "--max-calls", "2"])).server.max_calls == 2
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args([*serve, "--max-calls", bad])
        assert refused.value.code == 2
        assert f"--max-calls: must be 1 or more, not {bad}" in capsys.readouterr().err
