"""The JSON payloads on the cluster's subjects, validated: a malformed one is a `MessageError`, never a crash.

Pure code, no I/O: each message is a frozen dataclass with `to_bytes` and `from_bytes`. A reply is an
object with `"ok"`: true and the answer's fields, or false and `"error"` (`error_reply`, `read_reply`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from platform_core.pipeline.tools import ToolSpec

MAX_PAYLOAD_BYTES = 1024 * 1024  # the broker's default max_payload
STATUSES = frozenset({"done", "error", "timeout", "cancelled"})
Json = dict[str, Any]


class MessageError(ValueError):
    """A payload that is not what its subject carries (not JSON, not an object, a field missing or mistyped)."""


class RemoteError(Exception):
    """The other side answered with `"ok": false`; `str(error)` is its explanation."""


def decode(data: bytes) -> Json:
    """The JSON object in `data`, or MessageError."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise MessageError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MessageError(f"payload is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MessageError(f"payload must be a JSON object, got {type(value).__name__}")
    return value


def encode(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def error_reply(message: str) -> bytes:
    return encode({"ok": False, "error": message})


def ok_reply(fields: Json) -> bytes:
    return encode({"ok": True, **fields})


def read_reply(data: bytes) -> Json:
    """The fields of an ok reply; RemoteError for `"ok": false`, MessageError for anything else."""
    reply = decode(data)
    if reply.get("ok") is True:
        return reply
    if reply.get("ok") is False:
        raise RemoteError(str(reply.get("error") or "refused without a reason"))
    raise MessageError('a reply needs "ok": true or false')


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    if object in types:
        return True  # any JSON value
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is not a number
    return isinstance(value, types)


_JSON_NAMES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}
_JSON_NAMES |= {list: "array", type(None): "null"}


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)


M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """A payload's fields and their JSON types (FIELDS); OPTIONAL fields may be left out."""

    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> Json:
        return dataclasses.asdict(self)

    def to_bytes(self) -> bytes:
        return encode(self.to_json())

    @classmethod
    def from_bytes(cls: type[M], data: bytes) -> M:
        return cls.from_json(decode(data))

    @classmethod
    def from_json(cls: type[M], value: Json) -> M:
        kwargs: Json = {}
        for name, types in cls.FIELDS.items():
            if name not in value:
                if name in cls.OPTIONAL:
                    continue
                raise MessageError(f"{cls.__name__} needs the field {name!r}")
            if not _has_type(value[name], types):
                got = type(value[name]).__name__
                raise MessageError(f"{cls.__name__}.{name} must be {_names(types)}, got {got}")
            kwargs[name] = value[name]
        return cls(**kwargs)


@dataclass(frozen=True)
class ConversationStart(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "conversation_id": (str,),
        "agent_id": (str, type(None)),
        "customer_id": (str,),
    }
    conversation_id: str
    agent_id: str | None
    customer_id: str


@dataclass(frozen=True)
class ConversationEnd(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"conversation_id": (str,)}
    conversation_id: str


@dataclass(frozen=True)
class ToolsQuery(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"conversation_id": (str,), "wait_s": (int, float)}
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"wait_s"})
    conversation_id: str
    wait_s: float = 0.0


@dataclass(frozen=True)
class CallRequest(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "call_id": (str,),
        "conversation_id": (str,),
        "name": (str,),
        "arguments": (dict,),
        "turn_id": (int, type(None)),
    }
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"turn_id"})
    call_id: str  # the worker's id: its ToolCallUpdated events and a cancel of this one call name it
    conversation_id: str
    name: str
    arguments: Json
    turn_id: int | None = None


@dataclass(frozen=True)
class CallReply(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "status": (str,),
        "result": (object,),
        "error": (str, type(None)),
        "duration_s": (int, float),
        "gateway_call_id": (str,),
    }
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"result", "error", "duration_s", "gateway_call_id"})
    status: str
    result: Any = None
    error: str | None = None
    duration_s: float = 0.0
    gateway_call_id: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise MessageError(f"CallReply.status must be one of {sorted(STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class CancelCalls(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "conversation_id": (str,),
        "turn_id": (int, type(None)),
        "call_id": (str, type(None)),
        "reason": (str,),
    }
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"turn_id", "call_id", "reason"})
    conversation_id: str
    turn_id: int | None = None  # only this turn's calls (None: all the conversation's)
    call_id: str | None = None  # only this call, by the worker's id (None: by conversation and turn)
    reason: str = ""


@dataclass(frozen=True)
class ConversationOwner(Message):
    """A worker's decision: the node whose agent registered tools first owns the conversation (None: no
    node owns it now, its owner's agent left or its node is gone)."""

    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {"conversation_id": (str,), "node": (str, type(None))}
    conversation_id: str
    node: str | None


@dataclass(frozen=True)
class RemoteTool:
    spec: ToolSpec
    timeout_s: float  # the gateway's timeout for it: the worker waits a little longer for the reply


@dataclass(frozen=True)
class ToolsSnapshot:
    """A conversation's tools as one gateway node sees them; `seq` orders one node's snapshots."""

    conversation_id: str
    node: str
    seq: int
    has_agents: bool
    tools: tuple[RemoteTool, ...]

    def to_json(self) -> Json:
        tools = [
            {
                "name": t.spec.name,
                "description": t.spec.description,
                "parameters": t.spec.parameters,
                "timeout_s": t.timeout_s,
            }
            for t in self.tools
        ]
        return {
            "conversation_id": self.conversation_id,
            "node": self.node,
            "seq": self.seq,
            "has_agents": self.has_agents,
            "tools": tools,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_json())

    @classmethod
    def from_json(cls, value: Json) -> ToolsSnapshot:
        head = _SnapshotHead.from_json(value)
        tools = tuple(_tool(item, i) for i, item in enumerate(head.tools))
        return cls(head.conversation_id, head.node, head.seq, head.has_agents, tools)

    @classmethod
    def from_bytes(cls, data: bytes) -> ToolsSnapshot:
        return cls.from_json(decode(data))


@dataclass(frozen=True)
class _SnapshotHead(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "conversation_id": (str,),
        "node": (str,),
        "seq": (int,),
        "has_agents": (bool,),
        "tools": (list,),
    }
    conversation_id: str
    node: str
    seq: int
    has_agents: bool
    tools: list[Any]


@dataclass(frozen=True)
class _ToolFields(Message):
    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "name": (str,),
        "description": (str,),
        "parameters": (dict,),
        "timeout_s": (int, float),
    }
    name: str
    description: str
    parameters: Json
    timeout_s: float


def _tool(item: Any, index: int) -> RemoteTool:
    if not isinstance(item, dict):
        raise MessageError(f"tools[{index}] must be an object, got {type(item).__name__}")
    fields = _ToolFields.from_json(item)
    if not (math.isfinite(fields.timeout_s) and fields.timeout_s > 0):
        raise MessageError(f"tools[{index}].timeout_s must be a positive number of seconds")
    return RemoteTool(ToolSpec(fields.name, fields.description, fields.parameters), float(fields.timeout_s))
