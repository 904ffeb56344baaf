"""Whether the platform may serve where it is configured to: on another address than loopback, only with
strong API keys (every role of the program checks the same, docs/cluster.md)."""

from __future__ import annotations

import logging

from platform_core.config import ServerConfig
from platform_core.errors import StudioError
from platform_core.server.access import is_loopback, weak_key_problem

log = logging.getLogger(__name__)


class PlatformError(StudioError, RuntimeError):
    """The platform cannot start or run. `hint` says what to do."""


def check_exposure(server: ServerConfig) -> str | None:
    """None on loopback; elsewhere a warning, or PlatformError if a key is weak (anyone could guess it)."""
    if is_loopback(server.host):
        return None
    problems = [problem for key in server.customers() if (problem := weak_key_problem(key))]
    if not server.customers():
        problems.append("no API key is configured")
    if problems:
        raise PlatformError(
            f"Refusing to serve on {server.host}, reachable from other machines: {problems[0]}.",
            "Use a long random API key (--api-key, or Settings; `python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'` makes one), or serve on 127.0.0.1.",
        )
    warning = (
        f"serving on {server.host}: other machines can reach the platform; only callers and agents with "
        "the API key get in, and the connection is not encrypted (use a TLS proxy beyond your own network)"
    )
    log.warning(warning)
    return warning
