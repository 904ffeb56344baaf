"""The /call signalling messages, validated at the edge: size, nesting depth (before json parses it),
the type of every field. A message that fails is refused with one `BadMessage` (message and hint);
nothing is built for it."""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from platform_core.errors import StudioError

OFFER_HINT = 'send {"type": "offer", "sdp": "<SDP>", "agent_id": "<id>", "api_key": "<key>"}'
COMMAND_HINT = 'commands: {"type": "text", "text": "..."}, {"type": "hangup"}'
FEEDS = ("all", "no-levels")
# Fields of an offer that are strings or absent (null counts as absent: the call client sends null).
_OFFER_STRINGS = ("agent_id", "api_key", "token", "feed")

# A JSON string (escapes included), matched without backtracking, then everything but brackets.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class BadMessage(StudioError):
    """A signalling message refused at the edge; the caller is sent `message` and `hint`."""


@dataclass(frozen=True)
class MessageLimits:
    max_bytes: int
    max_depth: int


@dataclass(frozen=True)
class Offer:
    sdp: str
    agent_id: str | None
    api_key: str | None
    token: str | None
    feed: str


def json_depth(text: str) -> int:
    """How deeply `text`'s arrays and objects nest (0 for a scalar), without parsing it."""
    depth = deepest = 0
    for bracket in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def decode(raw: str | bytes, limits: MessageLimits, hint: str) -> dict[str, Any]:
    """One signalling message as a JSON object, or BadMessage saying what is wrong with it."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "replace"))
    if size > limits.max_bytes:
        raise BadMessage(f"the message is {size:,} bytes; the limit is {limits.max_bytes:,}", hint)
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise BadMessage("the message is not UTF-8 text", hint) from exc
    if (depth := json_depth(text)) > limits.max_depth:
        raise BadMessage(f"the message nests {depth} levels deep; the limit is {limits.max_depth}", hint)
    try:
        message = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise BadMessage(f"the message is not JSON ({exc})", hint) from exc
    if not isinstance(message, dict):
        raise BadMessage(f"the message is {_json_type(message)}, not a JSON object", hint)
    return message


def _optional_string(message: dict[str, Any], name: str) -> str | None:
    value = message.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadMessage(f'"{name}" must be a string, not {_json_type(value)}', OFFER_HINT)
    return value


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return "null" if value is None else names.get(type(value), "an object")


def parse_offer(raw: str | bytes, limits: MessageLimits) -> Offer:
    """The caller's first message: an offer whose every field has the right type."""
    message = decode(raw, limits, OFFER_HINT)
    if message.get("type") != "offer":
        raise BadMessage("the first message must be an offer", OFFER_HINT)
    sdp = message.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        what = "missing" if sdp is None else "empty" if isinstance(sdp, str) else _json_type(sdp)
        raise BadMessage(f'the offer\'s "sdp" must be the SDP text (it is {what})', OFFER_HINT)
    fields = {name: _optional_string(message, name) for name in _OFFER_STRINGS}
    feed = fields.pop("feed") or "all"
    if feed not in FEEDS:
        raise BadMessage(f'"feed" must be one of {", ".join(FEEDS)}, not {feed[:40]!r}', OFFER_HINT)
    return Offer(sdp=sdp, feed=feed, **fields)


@dataclass(frozen=True)
class Command:
    kind: str  # "text" or "hangup"
    text: str = ""


def parse_command(raw: str | bytes, limits: MessageLimits) -> Command:
    """A message after the answer: a typed turn or a hang-up."""
    message = decode(raw, limits, COMMAND_HINT)
    kind = message.get("type")
    if kind == "hangup":
        return Command("hangup")
    if kind == "text":
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadMessage('a text command needs a non-empty string "text"', COMMAND_HINT)
        return Command("text", text)
    shown = repr(kind)[:40] if isinstance(kind, str) else _json_type(kind)
    raise BadMessage(f"unknown command {shown}", COMMAND_HINT)


class TurnRate:
    """At most `per_second` typed turns in any one-second window (a sliding window of times)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._times: deque[float] = deque()

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0] >= 1.0:
            self._times.popleft()
        if len(self._times) >= self.per_second:
            return False
        self._times.append(now)
        return True
