"""The agent gateway's protocol logic, sans I/O: join, validation, tenancy, timeouts; it composes the
tool-call correlation (`tool_calls.py`) and uses the tool registration (`registration.py`).

Every method takes the current time and returns a list of effects (send, close, publish, finish); the
socket shell (`gateway.py`) carries them out. Tests drive this class directly, with no event loop.

Decisions where conversimple-sdk 0.2.4 is silent (also in docs/agent-protocol.md terms):
- The tenant comes only from the API key. The join topic `customer:<id>` is a label that must match the
  key's customer, the SDK's derived id (md5 of the key), or the `customer_id` the client connected with.
- Each agent connection gets one start notice per conversation: `conversation_ready` if it is a listener
  (dispatcher or standalone agent) when the conversation starts, or `conversation_lifecycle` started if it
  registers tools for a conversation it was not told about (a dispatched per-conversation instance; it
  then stops receiving `conversation_ready`, so instances never grab other conversations). A reconnecting
  owner keeps its old role instead.
- A conversation belongs to the first connection that registers tools for it (registration.py); others
  are refused and the owner is told, until the owner disconnects.
- The platform's clock is authoritative: at `timeout_seconds` the call is a timeout; a later answer is
  dropped quietly (it is late, not a protocol error).
"""

from __future__ import annotations

import hashlib
import logging
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlsplit

from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    ErrorOccurred,
)
from platform_core.gateway.frames import Frame, ProtocolError, parse_frame, push, reply_error, reply_ok
from platform_core.gateway.registration import register_tools, release, serve_elsewhere
from platform_core.gateway.schema import clamp_timeout
from platform_core.gateway.state import (
    AgentInfo,
    Close,
    Connection,
    Conversation,
    Effect,
    PendingCall,
    Publish,
    Send,
)
from platform_core.gateway.tool_calls import ToolCalls
from platform_core.pipeline.tools import ToolOutcome, ToolSpec

log = logging.getLogger(__name__)

CLIENT_EVENTS = (
    "phx_join",
    "phx_leave",
    "heartbeat",
    "register_conversation_tools",
    "tool_call_response",
    "tool_call_error",
)
POLICY_VIOLATION = 1008
LATE_READY_AFTER_S = 0.5  # a joined listener that registers nothing this long after is told of unserved ones


def credentials(path: str, headers: Any = None) -> tuple[str | None, str | None]:
    """(api key, customer id hint) from the query string, or an `Authorization: Bearer` header."""
    query = parse_qs(urlsplit(path).query)
    key = (query.get("auth_token") or query.get("api_key") or [""])[0]
    if not key and headers is not None:
        auth = str(headers.get("Authorization", "") or "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    return key or None, (query.get("customer_id") or [None])[0]  # type: ignore[list-item]


def sdk_customer_id(api_key: str) -> str:
    """The id conversimple-sdk derives from the key when it is given none (its topic label)."""
    return hashlib.md5(api_key.encode()).hexdigest()[:12]


class GatewayCore:
    def __init__(
        self,
        customers: dict[str, str],
        *,
        default_tool_timeout_s: float = 30.0,
        tool_timeouts: dict[str, float] | None = None,
        idle_timeout_s: float = 90.0,
        join_timeout_s: float = 10.0,
    ) -> None:
        self.customers = dict(customers)
        self.idle_timeout_s = idle_timeout_s  # several SDK heartbeat intervals (30 s) without a frame
        self.join_timeout_s = join_timeout_s
        self.connections: dict[str, Connection] = {}
        self.conversations: dict[str, Conversation] = {}
        self.tool_calls = ToolCalls(
            self.connections,
            self.conversations,
            default_timeout_s=clamp_timeout(default_tool_timeout_s),
            timeouts={k: clamp_timeout(v) for k, v in (tool_timeouts or {}).items()},
        )
        self._conn_seq = count(1)

    @property
    def calls(self) -> dict[str, PendingCall]:
        """The pending tool calls by call id."""
        return self.tool_calls.pending

    @property
    def tool_timeouts(self) -> dict[str, float]:
        """Per-tool timeouts set by the platform (mutable: the shell updates it)."""
        return self.tool_calls.timeouts

    @property
    def default_tool_timeout_s(self) -> float:
        return self.tool_calls.default_timeout_s

    # --- connections -----------------------------------------------------------------------------------

    def authenticate(self, api_key: str | None) -> tuple[str | None, str]:
        """(customer id, "") or (None, problem) — the problem text opens the SDK's circuit breaker."""
        if not api_key:
            return None, "unauthorized: missing_credentials (connect with ?auth_token=<API key>)"
        customer = self.customers.get(api_key)
        if customer is None:
            return None, "unauthorized: invalid_api_key (check the API key configured for this platform)"
        return customer, ""

    def open(self, path: str, remote: str, now: float, headers: Any = None) -> tuple[str, list[Effect]]:
        key, hint = credentials(path, headers)
        customer, problem = self.authenticate(key)
        topics = {f"customer:{customer}", f"customer:{sdk_customer_id(key or '')}"}
        if hint:
            topics.add(f"customer:{hint}")
        conn = Connection(
            id=f"agent-{next(self._conn_seq)}",
            customer_id=customer,
            auth_problem=problem,
            remote=remote,
            opened_at=now,
            last_seen=now,
            allowed_topics=frozenset(topics),
        )
        self.connections[conn.id] = conn
        if problem:
            log.warning("agent connection %s from %s refused: %s", conn.id, remote, problem)
        return conn.id, []

    def receive(self, connection_id: str, data: str | bytes, now: float) -> list[Effect]:
        conn = self.connections.get(connection_id)
        if conn is None or conn.closing:
            return []
        conn.last_seen = now
        try:
            frame = parse_frame(data)
        except ProtocolError as error:
            effects = self._protocol_error(conn, error)
            if error.code == "frame_too_large":
                effects += self.tool_calls.fail_oversized_answer(conn, data, now)
            return effects
        if conn.customer_id is None:
            return self._refuse(conn, frame)
        try:
            return self._dispatch(conn, frame, now)
        except ProtocolError as error:
            if error.ref is None and error.join_ref is None:
                error.ref, error.join_ref = frame.ref, frame.join_ref
            return self._protocol_error(conn, error, frame.topic)

    def closed(self, connection_id: str, reason: str, now: float) -> list[Effect]:
        conn = self.connections.pop(connection_id, None)
        if conn is None:
            return []
        effects = self.tool_calls.fail_disconnected(conn, reason, now)
        release(conn, self.conversations)
        if conn.topic is not None and conn.customer_id is not None:
            effects.append(
                Publish(AgentDisconnected(customer_id=conn.customer_id, connection_id=conn.id, reason=reason))
            )
        return effects

    def tick(self, now: float) -> list[Effect]:
        """Housekeeping: close silent or never-joined connections, expire overdue calls (safety net)."""
        effects: list[Effect] = []
        for conn in list(self.connections.values()):
            if conn.topic is None and now - conn.opened_at > self.join_timeout_s:
                effects.append(Close(conn.id, POLICY_VIOLATION, "join_timeout: no phx_join received"))
            elif now - conn.last_seen > self.idle_timeout_s:
                effects.append(Close(conn.id, 1001, f"idle: no frame for {self.idle_timeout_s:.0f} s"))
            elif conn.late_check_at is not None and now >= conn.late_check_at:
                effects += self._late_ready(conn)
        return effects + self.tool_calls.expire_overdue(now)

    # --- conversations ---------------------------------------------------------------------------------

    def start_conversation(
        self, conversation_id: str, agent_id: str | None, customer_id: str, now: float
    ) -> list[Effect]:
        existing = self.conversations.get(conversation_id)
        if existing is not None:
            if existing.customer_id != customer_id:
                raise ValueError(f"conversation id {conversation_id!r} is already in use")
            return []
        conversation = self.conversations[conversation_id] = Conversation(conversation_id, customer_id, agent_id)
        payload = self._ready(conversation)
        effects: list[Effect] = []
        for conn in self._joined(customer_id):
            if not conn.bound:
                conn.told.add(conversation_id)
                effects.append(Send(conn.id, push(conn.topic, "conversation_ready", payload)))
        return effects

    def end_conversation(self, conversation_id: str, now: float) -> list[Effect]:
        conversation = self.conversations.pop(conversation_id, None)
        if conversation is None:
            return []
        effects = self.tool_calls.cancel_matching(conversation_id, None, now)
        payload = {
            "event": "conversation_ended",
            "conversation_id": conversation_id,
            "customer_id": conversation.customer_id,
        }
        for conn in self._joined(conversation.customer_id):
            involved = conversation_id in conn.told or conversation_id in conn.registered
            conn.told.discard(conversation_id)
            conn.registered.pop(conversation_id, None)
            if involved:
                effects.append(Send(conn.id, push(conn.topic, "conversation_lifecycle", payload)))
        return effects

    def served_elsewhere(self, conversation_id: str, where: str | None) -> list[Effect]:
        """Another platform process's agent owns the conversation (`where` says which), or none now.
        When the other owner is gone, this process's listeners hear of the conversation again: one refused
        meanwhile (e.g. failing over from the dead owner's node) has let it go, and may now take it."""
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return []
        lifted = where is None and conversation.served_elsewhere is not None
        effects = serve_elsewhere(conversation, self.connections, where)
        if lifted and conversation.owner is None:
            for conn in self._joined(conversation.customer_id):
                if not conn.bound and conversation_id not in conn.registered:
                    conn.told.add(conversation_id)
                    effects.append(Send(conn.id, push(conn.topic, "conversation_ready", self._ready(conversation))))
        return effects

    def has_agents(self, conversation_id: str) -> bool:
        """Whether any agent of the conversation's customer is connected (and may register tools)."""
        conversation = self.conversations.get(conversation_id)
        return conversation is not None and bool(self._joined(conversation.customer_id))

    def tools_for(self, conversation_id: str) -> list[ToolSpec]:
        """The tools the LLM may choose now: only those whose agent is connected (a reconnecting agent
        registers again; until then, offering its tools would spend a tool-choice pass on an error)."""
        conversation = self.conversations.get(conversation_id)
        return [r.spec for r in conversation.routes.values() if r.connection_id] if conversation else []

    # --- calls -----------------------------------------------------------------------------------------

    def timeout_for(self, conversation_id: str, name: str) -> float:
        return self.tool_calls.timeout_for(conversation_id, name)

    def start_call(
        self, conversation_id: str, name: str, arguments: dict[str, Any], turn_id: int | None, now: float
    ) -> tuple[PendingCall | ToolOutcome, list[Effect]]:
        """Send a call to its agent: (the pending call, effects), or (an error outcome, effects)."""
        return self.tool_calls.start(conversation_id, name, arguments, turn_id, now)

    def expire_call(self, call_id: str, now: float) -> list[Effect]:
        return self.tool_calls.expire(call_id, now)

    def cancel_call(self, call_id: str, now: float, reason: str) -> list[Effect]:
        return self.tool_calls.cancel(call_id, now, reason)

    def cancel_calls(self, conversation_id: str, turn_id: int | None, now: float, reason: str) -> list[Effect]:
        """Cancel the conversation's pending calls (only `turn_id`'s if not None); their agents are told."""
        return self.tool_calls.cancel_matching(conversation_id, turn_id, now, reason)

    # --- queries ---------------------------------------------------------------------------------------

    def snapshot(self, now: float) -> list[AgentInfo]:
        return [
            AgentInfo(
                c.id,
                c.customer_id,
                c.remote,
                now - c.opened_at,
                c.topic is not None,
                dict(c.registered),
                len(c.pending),
            )
            for c in self.connections.values()
            if c.customer_id is not None
        ]

    # --- internals: client frames ----------------------------------------------------------------------

    def _dispatch(self, conn: Connection, frame: Frame, now: float) -> list[Effect]:
        event = frame.event
        if event == "phx_join":
            return self._join(conn, frame)
        if event == "heartbeat" and (frame.topic == "phoenix" or frame.topic == conn.topic):
            return [Send(conn.id, reply_ok(frame))]
        if conn.topic is None:
            raise ProtocolError("not_joined", "join the channel first: phx_join on customer:<customer id>")
        if frame.topic != conn.topic:
            raise ProtocolError(
                "wrong_topic",
                f"frame on topic {frame.topic!r}; this connection joined "
                f"{conn.topic!r}, send every event on that topic",
            )
        if event == "register_conversation_tools":
            return register_tools(conn, frame, self.conversations, self.connections)
        if event in ("tool_call_response", "tool_call_error"):
            return self.tool_calls.answer(conn, frame, now)
        if event == "phx_leave":
            return [Send(conn.id, reply_ok(frame)), Close(conn.id, 1000, "left the channel")]
        raise ProtocolError(
            "unknown_event",
            f"{event!r} is not a client event of this protocol (expected one of {', '.join(CLIENT_EVENTS)})",
        )

    def _join(self, conn: Connection, frame: Frame) -> list[Effect]:
        if frame.topic not in conn.allowed_topics:
            raise ProtocolError(
                "wrong_topic",
                f"cannot join {frame.topic!r}: join customer:<your customer "
                "id>, the id you connected with (customer_id=...)",
            )
        if conn.topic not in (None, frame.topic):
            raise ProtocolError("wrong_topic", f"already joined {conn.topic!r}; one channel per connection")
        effects: list[Effect] = [Send(conn.id, reply_ok(frame))]
        if conn.topic is None:
            conn.topic = frame.topic
            assert conn.customer_id is not None
            effects.append(
                Publish(AgentConnected(customer_id=conn.customer_id, connection_id=conn.id, remote=conn.remote))
            )
            conn.late_check_at = conn.last_seen + LATE_READY_AFTER_S
        return effects

    def _late_ready(self, conn: Connection) -> list[Effect]:
        """A listener that joined late (or reconnected) still hears of the conversations no agent owns.
        Only a moment after its join: a dispatched instance registers its conversation at once (and is
        then bound, never offered others); a reconnecting listener re-registers its own and stays a
        listener, so it still hears of the ones that started while it was away."""
        conn.late_check_at = None
        if conn.bound or conn.topic is None:
            return []
        effects: list[Effect] = []
        for conversation in self.conversations.values():
            unowned = conversation.owner is None
            if conversation.customer_id == conn.customer_id and unowned and conversation.id not in conn.told:
                conn.told.add(conversation.id)
                effects.append(Send(conn.id, push(conn.topic, "conversation_ready", self._ready(conversation))))
        return effects

    def _refuse(self, conn: Connection, frame: Frame) -> list[Effect]:
        error = ProtocolError(*conn.auth_problem.split(": ", 1), ref=frame.ref, join_ref=frame.join_ref)
        reply = reply_error(error, frame.topic)
        conn.closing = True
        return [Send(conn.id, reply), Close(conn.id, POLICY_VIOLATION, conn.auth_problem[:120])]

    # --- internals: helpers ----------------------------------------------------------------------------

    @staticmethod
    def _ready(conversation: Conversation) -> dict[str, Any]:
        return {
            "conversation_id": conversation.id,
            "agent_id": conversation.agent_id,
            "customer_id": conversation.customer_id,
        }

    def _joined(self, customer_id: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.customer_id == customer_id and c.topic is not None]

    def _protocol_error(self, conn: Connection, error: ProtocolError, topic: str = "phoenix") -> list[Effect]:
        first = error.code not in conn.error_codes
        level = logging.WARNING if first else logging.DEBUG  # once per kind and connection, not a flood
        log.log(level, "protocol error from %s (%s): %s", conn.id, conn.customer_id or "unauthenticated", error)
        effects: list[Effect] = [Send(conn.id, reply_error(error, topic))]
        conn.error_codes.add(error.code)
        if first and conn.customer_id is not None:
            effects.append(
                Publish(
                    ErrorOccurred(
                        where="agent gateway",
                        message=f"agent {conn.id} ({conn.customer_id}) sent a bad frame: {error}",
                        hint="the agent was told; fix the agent or upgrade its SDK",
                    )
                )
            )
        if conn.customer_id is None:
            conn.closing = True
            effects.append(Close(conn.id, POLICY_VIOLATION, conn.auth_problem[:120]))
        return effects
