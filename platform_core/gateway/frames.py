"""Phoenix-channel framing of the Conversimple SDK protocol (pure functions, no I/O).

Clients send JSON objects `{"join_ref", "ref", "topic", "event", "payload"}`; the gateway answers with
JSON arrays `[join_ref, ref, topic, event, payload]` (see docs/agent-protocol.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from platform_core.errors import StudioError
from platform_core.protocol import MAX_FRAME_BYTES

Ref = str | int | None


class ProtocolError(StudioError):
    """A frame the gateway cannot accept. `code` is stable and machine-readable; `detail` says what
    was wrong and what to do (the agent is told both; `message` is "code: detail")."""

    def __init__(
        self, code: str, detail: str, *, ref: Ref = None, join_ref: Ref = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.ref = ref
        self.join_ref = join_ref
        self.details = details or {}  # extra fields of the reply's response (e.g. the conversation_id)


@dataclass(frozen=True, slots=True)
class Frame:
    join_ref: Ref
    ref: Ref
    topic: str
    event: str
    payload: dict[str, Any]


def _ref(value: Any) -> Ref:
    return value if value is None or (isinstance(value, str | int) and not isinstance(value, bool)) else None


def utf8_size(data: str | bytes) -> int:
    """Byte size of a frame; exact only when it could matter for the size limit."""
    if isinstance(data, bytes):
        return len(data)
    if len(data) * 4 <= MAX_FRAME_BYTES:  # UTF-8 uses at most 4 bytes per character
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


def parse_frame(data: str | bytes) -> Frame:
    """Decode one client frame (object form, or the array form Phoenix clients may also use)."""
    if isinstance(data, bytes):
        raise ProtocolError("binary_frame", "binary frames are not supported; send JSON as a text frame")
    size = utf8_size(data)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(
            "frame_too_large",
            f"frame of {size:,} bytes exceeds the {MAX_FRAME_BYTES:,}-byte limit; "
            "return a smaller result (summarise or page large data)",
        )
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise ProtocolError("malformed_json", f"frame is not valid JSON ({exc}); send one JSON object") from None
    except RecursionError:
        raise ProtocolError("malformed_json", "frame nests too deeply to decode; send flat JSON") from None
    if isinstance(raw, list) and len(raw) == 5:
        raw = dict(zip(("join_ref", "ref", "topic", "event", "payload"), raw, strict=True))
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_frame", "expected a JSON object with join_ref, ref, topic, event and payload")
    ref, join_ref = _ref(raw.get("ref")), _ref(raw.get("join_ref"))
    topic, event, payload = raw.get("topic"), raw.get("event"), raw.get("payload", {})
    if not isinstance(topic, str) or not topic:
        raise ProtocolError("invalid_frame", "'topic' must be a non-empty string", ref=ref, join_ref=join_ref)
    if not isinstance(event, str) or not event:
        raise ProtocolError("invalid_frame", "'event' must be a non-empty string", ref=ref, join_ref=join_ref)
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        message = f"payload of {event!r} must be a JSON object"
        raise ProtocolError("invalid_payload", message, ref=ref, join_ref=join_ref)
    return Frame(join_ref, ref, topic, event, payload)


def encode(join_ref: Ref, ref: Ref, topic: str, event: str, payload: dict[str, Any]) -> str:
    """A server frame in the array form the SDK reads."""
    return json.dumps([join_ref, ref, topic, event, payload], separators=(",", ":"), default=str)


def push(topic: str | None, event: str, payload: dict[str, Any]) -> str:
    """A server-initiated frame (no refs) on the connection's topic, or on "phoenix" before it joined."""
    return encode(None, None, topic or "phoenix", event, payload)


def reply_ok(frame: Frame, response: dict[str, Any] | None = None) -> str:
    return encode(frame.join_ref, frame.ref, frame.topic, "phx_reply", {"status": "ok", "response": response or {}})


def reply_error(error: ProtocolError, topic: str = "phoenix") -> str:
    """`reason` carries code and explanation together: the SDK logs only `reason`."""
    response = {**error.details, "reason": error.message, "code": error.code, "message": error.detail}
    return encode(error.join_ref, error.ref, topic, "phx_reply", {"status": "error", "response": response})
