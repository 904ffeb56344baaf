"""Tool registration: an agent connection's tool list for a conversation, sans I/O.

Each tool name routes to the connection that registered it last; a connection's new list replaces its old
one. A connection that registers for a conversation it was not told about is a dispatched instance: it
gets `conversation_lifecycle` started (unless it is reconnecting) and no further `conversation_ready`.
"""

from __future__ import annotations

from platform_core.events import ToolsRegistered
from platform_core.gateway.frames import Frame, ProtocolError, push
from platform_core.gateway.schema import SpecError, parse_tools
from platform_core.gateway.state import Connection, Conversation, Effect, Publish, Route, Send, ToolsChanged


def register_tools(conn: Connection, frame: Frame, conversations: dict[str, Conversation]) -> list[Effect]:
    """A `register_conversation_tools` frame: route its tools to `conn` (ProtocolError if refused)."""
    conversation_id = frame.payload.get("conversation_id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise ProtocolError("invalid_payload", "register_conversation_tools needs a conversation_id string")
    conversation = conversations.get(conversation_id)
    if conversation is None or conversation.customer_id != conn.customer_id:
        raise ProtocolError(
            "unknown_conversation",
            f"no live conversation {conversation_id!r} for this customer; register after conversation_ready",
        )
    try:
        specs, declared = parse_tools(frame.payload.get("tools"))
    except SpecError as exc:
        raise ProtocolError("invalid_tools", f"{exc}; registration ignored") from None
    reconnect = any((r := conversation.routes.get(s.name)) and r.connection_id is None for s in specs)
    for name in conn.registered.get(conversation_id, ()):  # a new list replaces this connection's old one
        if conversation.routes.get(name) and conversation.routes[name].connection_id == conn.id:
            del conversation.routes[name]
    for spec in specs:
        conversation.routes[spec.name] = Route(spec, conn.id, declared.get(spec.name))
    conn.registered[conversation_id] = tuple(s.name for s in specs)
    assert conn.customer_id is not None
    effects: list[Effect] = [
        Publish(
            ToolsRegistered(
                customer_id=conn.customer_id,
                conversation_id=conversation_id,
                connection_id=conn.id,
                tools=tuple(frame.payload["tools"]),
            )
        ),
        ToolsChanged(conversation_id),
    ]
    if conversation_id not in conn.told:
        conn.told.add(conversation_id)
        conn.bound = True
        if not reconnect:  # a reconnecting instance already had its start notice
            payload = {
                "event": "conversation_started",
                "conversation_id": conversation_id,
                "agent_id": conversation.agent_id,
                "customer_id": conversation.customer_id,
            }
            effects.append(Send(conn.id, push(conn.topic, "conversation_lifecycle", payload)))
    return effects
