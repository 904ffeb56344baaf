"""The gateway's records (connections, conversations, calls) and the effects its core asks the shell to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from platform_core.events import Event
from platform_core.pipeline.tools import ToolOutcome, ToolSpec

# --- effects: what the sans-I/O core asks its shell to do ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    connection_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Close:
    connection_id: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Publish:
    event: Event


@dataclass(frozen=True, slots=True)
class Finish:
    """A call reached its final state; whoever awaits it gets `outcome`."""

    outcome: ToolOutcome


@dataclass(frozen=True, slots=True)
class ToolsChanged:
    conversation_id: str


Effect = Send | Close | Publish | Finish | ToolsChanged


# --- records -------------------------------------------------------------------------------------------


@dataclass
class Connection:
    id: str
    customer_id: str | None  # None: the API key was missing or wrong; only a refusal is sent
    auth_problem: str
    remote: str
    opened_at: float
    last_seen: float
    allowed_topics: frozenset[str]
    topic: str | None = None  # the joined channel
    closing: bool = False  # refused: later frames are ignored
    late_check_at: float | None = None  # when to offer it conversations started before it joined
    bound: bool = False  # a per-conversation instance: it gets no conversation_ready for others
    told: set[str] = field(default_factory=set)  # conversations it was told about
    registered: dict[str, tuple[str, ...]] = field(default_factory=dict)  # conversation -> tool names
    pending: set[str] = field(default_factory=set)  # call ids awaiting its answer
    error_codes: set[str] = field(default_factory=set)  # published once each, to keep the bus quiet


@dataclass
class Route:
    spec: ToolSpec
    connection_id: str | None  # None: its agent disconnected (it may reconnect and register again)
    declared_timeout_s: float | None = None


@dataclass
class Conversation:
    id: str
    customer_id: str
    agent_id: str | None
    routes: dict[str, Route] = field(default_factory=dict)  # all the owner's
    owner: str | None = None  # the connection that registered first; None until then or once it left
    released: bool = False  # its owner's connection closed: the reconnecting owner may register again
    owner_was_bound: bool = False  # the released owner was a per-conversation instance
    contested_by: set[str] = field(default_factory=set)  # refused connections the owner was told of
    served_elsewhere: str | None = None  # an agent of another platform process owns it (say which)


@dataclass
class PendingCall:
    call_id: str
    conversation_id: str
    connection_id: str
    name: str
    arguments: dict[str, Any]
    turn_id: int | None
    started_at: float
    deadline: float


@dataclass(frozen=True)
class AgentInfo:
    """One connected agent, for the GUI."""

    connection_id: str
    customer_id: str
    remote: str
    connected_for_s: float
    joined: bool
    tools: dict[str, tuple[str, ...]]  # conversation id -> tool names it registered
    pending_calls: int
