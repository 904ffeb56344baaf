"""The health of the remote platform or cluster the app's calls go to (app/call_target.py), shown in the
status bar: its `/healthz` read every few seconds. A front door's report says whether its broker
connection is up and how many media workers have room; a plain platform's says whether its engines serve."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx

POLL_S = 2.0
TIMEOUT_S = 2.0


def describe(report: dict[str, Any]) -> tuple[str, bool]:
    """One line for the status bar and whether all is well, from a `/healthz?format=json` report."""
    ok = report.get("status") == "ok"
    reason = str(report.get("reason") or "")
    if report.get("role") == "front":
        workers = report.get("workers") or {}
        free = report.get("free_capacity", 0)
        broker = (report.get("cluster") or {}).get("state", "unknown")
        text = f"cluster: {len(workers)} media workers, {free} calls free, broker {broker}"
    else:
        text = f"remote platform: {report.get('status', 'unknown')}"
    return (text if ok or not reason else f"{text} ({reason})"), ok


async def read_health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The platform's health report; OSError-like failures come back as httpx.HTTPError."""
    response = await client.get(f"{url}/healthz", params={"format": "json"})
    report = response.json()  # 503 (degraded) still carries the report
    if not isinstance(report, dict):
        raise ValueError("its /healthz did not answer a JSON object")
    return report


class RemoteHealthWatch:
    """Polls one remote platform's health while it is the app's call target; `show(text, ok)` displays it."""

    def __init__(self, show: Callable[[str, bool], None]) -> None:
        self._show = show
        self._url: str | None = None
        self._task: asyncio.Task[None] | None = None

    def follow(self, url: str | None) -> None:
        """Watch `url` from now on (None: stop, and clear what is shown)."""
        if url == self._url:
            return
        self.stop()
        self._url = url
        if url is not None:
            self._show(f"remote platform: asking {url}…", True)
            self._task = asyncio.ensure_future(self._poll(url))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._task, self._url = None, None
        self._show("", True)

    async def _poll(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=TIMEOUT_S, trust_env=False) as client:  # one connection, kept alive
            while True:
                try:
                    text, ok = describe(await read_health(client, url))
                except (httpx.HTTPError, ValueError) as exc:
                    text, ok = f"remote platform {url} unreachable: {exc or type(exc).__name__}", False
                with contextlib.suppress(RuntimeError):  # the window went away under the last poll
                    self._show(text, ok)
                await asyncio.sleep(POLL_S)
