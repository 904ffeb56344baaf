"""The client side of the Phoenix-channel framing (pure, no I/O)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from agent_sdk.tools import json_default


class AuthenticationError(ConnectionError):
    """The platform refused the API key. Permanent: the SDK does not retry."""


@dataclass(frozen=True)
class ServerMessage:
    ref: str | None
    topic: str
    event: str
    payload: dict[str, Any]


def derived_customer_id(api_key: str) -> str:
    """The id conversimple-sdk derives from a key when none is given (kept for topic compatibility)."""
    return hashlib.md5(api_key.encode()).hexdigest()[:12]


def platform_urls(value: str | Sequence[str]) -> list[str]:
    """The platform's agent endpoints: one URL, a comma-separated string of them, or a list."""
    parts = value.split(",") if isinstance(value, str) else [p for item in value for p in item.split(",")]
    urls = [p.strip() for p in parts if p.strip()]
    if not urls:
        raise ValueError("no platform URL given")
    return urls


def connect_url(url: str, api_key: str, customer_id: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode({'customer_id': customer_id, 'auth_token': api_key})}"


class Channel:
    """Refs and frames of one customer channel."""

    def __init__(self, customer_id: str) -> None:
        self.topic = f"customer:{customer_id}"
        self._ref = 0

    def _next(self) -> str:
        self._ref += 1
        return str(self._ref)

    def join(self) -> str:
        ref = self._next()
        return self._frame(ref, ref, "phx_join", {})

    def push(self, event: str, payload: dict[str, Any]) -> str:
        return self._frame(None, self._next(), event, payload)

    def _frame(self, join_ref: str | None, ref: str, event: str, payload: dict[str, Any]) -> str:
        message = {"join_ref": join_ref, "ref": ref, "topic": self.topic, "event": event, "payload": payload}
        return json.dumps(message, separators=(",", ":"), default=json_default)


def parse(data: str | bytes) -> ServerMessage | None:
    """A server frame (array or object form), or None if it is not one."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    if isinstance(raw, list) and len(raw) >= 4:
        payload = raw[4] if len(raw) > 4 else {}
        raw = {"ref": raw[1], "topic": raw[2], "event": raw[3], "payload": payload}
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
        return None
    payload = raw.get("payload")
    ref = raw.get("ref")
    return ServerMessage(
        None if ref is None else str(ref),
        str(raw.get("topic", "")),
        raw["event"],
        payload if isinstance(payload, dict) else {},
    )


def join_result(message: ServerMessage | None) -> str | None:
    """None if the join was accepted, else the refusal reason."""
    if message is None or message.event != "phx_reply":
        return f"unexpected join reply: {message}"
    if message.payload.get("status") == "ok":
        return None
    response = message.payload.get("response") or {}
    return str(response.get("reason") if isinstance(response, dict) else response) or "join refused"
