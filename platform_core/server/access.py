"""Who may use the platform's port: the Host and Origin checks, the page's short-lived tokens, and the
throttle on failed keys (issue 14). The server asks `AccessGuard` before it routes any request.

- `Host` must name this platform (loopback names, the bound address, the address the connection
  arrived at, or a configured name): a web site that re-points its own DNS name at 127.0.0.1 (DNS
  rebinding) sends its own name and is refused.
- `Origin`, when a browser sends one, must be the platform's own origin (a name above, on this port)
  or one of `allowed_origins`: another web site's script cannot open /call or the gateway. Python
  agents and the CLI send no Origin; they still need the key.
- Failed keys are counted per remote address; after `max_failures` in `window_s` that address is
  refused (429) for `lockout_s`, so keys cannot be guessed quickly.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.datastructures import Headers

from platform_core.config import ServerConfig

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
WEAK_KEYS = frozenset({"dev-key", "test-key", "changeme", "secret", "password", "api-key", "key"})
MIN_KEY_LENGTH = 16
PAGE_TOKEN_PREFIX = "page."


@dataclass(frozen=True)
class Refusal:
    """An HTTP refusal: the status and a body that says why and what to configure."""

    status: int
    reason: str
    retry_after_s: float = 0.0


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def weak_key_problem(key: str) -> str | None:
    """Why `key` must not guard a platform others can reach, or None if it is strong enough."""
    if not key:
        return "the API key is empty"
    if key.lower() in WEAK_KEYS:
        return f"the API key {key!r} is a well-known one"
    if len(key) < MIN_KEY_LENGTH:
        return f"the API key is {len(key)} characters long (at least {MIN_KEY_LENGTH} are needed)"
    return None


class PageTokens:
    """Tokens the platform puts into the page it serves: signed with a secret of this process, valid
    `ttl_s`, so only a page read from this platform (a same-origin read) can place calls without a key."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._secret = secrets.token_bytes(32)

    def _signature(self, expires: int) -> str:
        return hmac.new(self._secret, f"{PAGE_TOKEN_PREFIX}{expires}".encode(), hashlib.sha256).hexdigest()

    def mint(self) -> tuple[str, int]:
        """A new token and its expiry (Unix seconds)."""
        expires = int(self._clock() + self.ttl_s)
        return f"{PAGE_TOKEN_PREFIX}{expires}.{self._signature(expires)}", expires

    def problem(self, token: str) -> str | None:
        """None if `token` is one of ours and still valid, else what is wrong with it."""
        _, _, rest = token.partition(PAGE_TOKEN_PREFIX)
        expires_text, _, signature = rest.partition(".")
        if not expires_text.isdigit() or not hmac.compare_digest(signature, self._signature(int(expires_text))):
            return "the page token is not one this platform issued"
        if int(expires_text) < self._clock():
            return "the page token has expired"
        return None


class FailureThrottle:
    """Failed authentications per remote address; too many in a window lock that address out."""

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 10.0,
        lockout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures, self.window_s, self.lockout_s = max_failures, window_s, lockout_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self.refused = 0  # requests refused while locked out (for logs and tests)

    def record_failure(self, remote: str) -> None:
        now = self._clock()
        recent = self._failures.setdefault(remote, deque())
        recent.append(now)
        while recent and recent[0] < now - self.window_s:
            recent.popleft()
        if len(recent) >= self.max_failures:
            self._locked_until[remote] = now + self.lockout_s
            recent.clear()
            log.warning(
                "%s locked out for %.0f s after %d failed authentications", remote, self.lockout_s, self.max_failures
            )
        if len(self._failures) > 10_000:  # many addresses (IPv6): forget the quiet ones
            self._forget_before(now - self.window_s)

    def retry_after(self, remote: str) -> float:
        """Seconds until `remote` may try again (0: now)."""
        until = self._locked_until.get(remote)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._locked_until[remote]
            return 0.0
        return left

    def _forget_before(self, cutoff: float) -> None:
        for remote in [r for r, times in self._failures.items() if not times or times[-1] < cutoff]:
            del self._failures[remote]


def _hostname(value: str) -> str | None:
    """The host of a Host header value ("name", "name:port", "[v6]:port"), lower-case; None if malformed."""
    try:
        parsed = urlsplit(f"//{value}")
        parsed.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return None
    return parsed.hostname or None


class AccessGuard:
    """The checks `start_server` runs on every request, and the state they keep."""

    def __init__(
        self,
        bound_host: str,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        tokens: PageTokens | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        names = set(LOOPBACK_NAMES) | {h.lower().strip("[]") for h in allowed_hosts}
        if bound_host not in WILDCARD_HOSTS:
            names.add(bound_host.lower().strip("[]"))
        self.host_names = frozenset(names)
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.tokens = tokens or PageTokens(600.0)
        self.throttle = throttle or FailureThrottle()

    def _own_host(self, hostname: str, local_ip: str | None) -> bool:
        return hostname in self.host_names or (local_ip is not None and hostname == local_ip.lower())

    def check(self, headers: Headers, local_address: tuple[Any, ...] | None) -> Refusal | None:
        """None if the request's Host and Origin are this platform's, else the 403 that refuses it."""
        local_ip, local_port = (remote_ip(local_address), int(local_address[1])) if local_address else (None, None)
        host_value = headers.get("Host", "")
        hostname = _hostname(host_value)
        if hostname is None or not self._own_host(hostname, local_ip):
            return Refusal(
                403,
                f"forbidden: Host {host_value!r} is not a name of this platform. Use http://127.0.0.1 or "
                "http://localhost, or add the name to allowed_hosts in the server settings.",
            )
        origin = headers.get("Origin")
        if origin is not None and not self._own_origin(origin, local_ip, local_port):
            return Refusal(
                403,
                f"forbidden: requests from the web origin {origin!r} are not allowed. Open the platform's own "
                "page, or add the origin to allowed_origins in the server settings.",
            )
        return None

    def _own_origin(self, origin: str, local_ip: str | None, local_port: int | None) -> bool:
        if origin.rstrip("/").lower() in self.allowed_origins:
            return True
        try:
            parsed = urlsplit(origin)
            port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
        except ValueError:
            return False
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            return False  # also "null" (sandboxed frames, file:// pages)
        return self._own_host(parsed.hostname, local_ip) and port == local_port

    def too_many_failures(self, remote: str) -> Refusal | None:
        """The 429 for an address that failed to authenticate too often, else None."""
        wait = self.throttle.retry_after(remote)
        if wait <= 0:
            return None
        self.throttle.refused += 1
        return Refusal(
            429, f"too many failed attempts, wait {wait:.0f} s (then use the platform's API key)", retry_after_s=wait
        )

    def failed(self, remote: str, where: str, problem: str) -> None:
        """Log and count one failed authentication from `remote`."""
        remote = canonical_ip(remote)
        log.warning("authentication failed from %s on %s: %s", remote or "(unknown)", where, problem)
        self.throttle.record_failure(remote)


def remote_ip(address: object) -> str:
    """The IP of a connection's `remote_address` or `local_address` (a tuple), or "" when unknown.
    An IPv4 address seen through a dual-stack socket (::ffff:a.b.c.d) is given as a.b.c.d."""
    return canonical_ip(str(address[0])) if isinstance(address, tuple) and address else ""


def canonical_ip(ip: str) -> str:
    """`ip`, with an IPv4-mapped IPv6 address (::ffff:a.b.c.d) given as a.b.c.d."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    return str(parsed.ipv4_mapped) if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped else ip


def access_guard_for(server: ServerConfig) -> AccessGuard:
    """The guard the settings describe (hosts, origins, page-token lifetime, the failure throttle)."""
    return AccessGuard(
        server.host,
        allowed_hosts=server.allowed_hosts,
        allowed_origins=server.allowed_origins,
        tokens=PageTokens(server.page_token_ttl_s),
        throttle=FailureThrottle(server.auth_max_failures, server.auth_window_s, server.auth_lockout_s),
    )
