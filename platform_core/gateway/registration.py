"""Tool registration: an agent connection's tool list for a conversation, sans I/O.

A conversation belongs to one agent connection: the first that registers tools for it owns it, and
every tool call of the conversation goes to that connection. Another connection's registration is
refused (`conversation_owned`) and the owner is told (`connection_warning`). When the owner's connection
closes, ownership is released: the reconnecting owner, or another connection, may register again.

The owner's newest list replaces its earlier one. Each tool is checked on its own (schema.py): a bad
tool is refused with the reason and the others of the same registration are registered.

When several platform processes share a conversation (a cluster's gateway nodes, docs/cluster.md), one
decides which process's agent owns it; the others are told (`serve_elsewhere`): their owner, if any, is
refused as a second connection would be, and so is every later registration, until it is released.

A connection that registers for a conversation it was not told about is either the owner reconnecting
(it takes the released owner's role, listener or bound instance) or a dispatched per-conversation
instance: it gets `conversation_lifecycle` started and is *bound* (no `conversation_ready` for others).
"""

from __future__ import annotations

import logging

from platform_core.events import ErrorOccurred, ToolsRegistered
from platform_core.gateway.frames import Frame, ProtocolError, push, reply_error
from platform_core.gateway.schema import SpecError, parse_tools
from platform_core.gateway.state import Connection, Conversation, Effect, Publish, Route, Send, ToolsChanged

log = logging.getLogger(__name__)


def register_tools(
    conn: Connection, frame: Frame, conversations: dict[str, Conversation], connections: dict[str, Connection]
) -> list[Effect]:
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
    if conversation.served_elsewhere is not None:
        raise _owned_elsewhere(conversation)
    owner = connections.get(conversation.owner) if conversation.owner else None
    if owner is not None and owner.id != conn.id:
        return _refuse_contested(conn, owner, frame, conversation)
    try:
        specs, declared, refused = parse_tools(frame.payload.get("tools"))
    except SpecError as exc:
        raise ProtocolError("invalid_tools", f"{exc}; registration ignored") from None
    reconnect = conversation.owner is None and conversation.released
    if conversation.owner != conn.id:
        conversation.contested_by.clear()
    conversation.owner, conversation.released = conn.id, False
    conversation.routes = {s.name: Route(s, conn.id, declared.get(s.name)) for s in specs}
    conn.registered[conversation_id] = tuple(s.name for s in specs)
    assert conn.customer_id is not None
    effects: list[Effect] = [
        Publish(
            ToolsRegistered(
                customer_id=conn.customer_id,
                conversation_id=conversation_id,
                connection_id=conn.id,
                tools=tuple({"name": s.name, "description": s.description, "parameters": s.parameters} for s in specs),
            )
        ),
        ToolsChanged(conversation_id),
    ]
    if refused:
        effects.append(Send(conn.id, _refused_tools(frame, conversation_id, refused)))
    if conversation_id not in conn.told:
        conn.told.add(conversation_id)
        if reconnect:  # the owner reconnecting takes its old role; it already had its start notice
            conn.bound = conn.bound or conversation.owner_was_bound
        else:  # a dispatched per-conversation instance
            conn.bound = True
            payload = {
                "event": "conversation_started",
                "conversation_id": conversation_id,
                "agent_id": conversation.agent_id,
                "customer_id": conversation.customer_id,
            }
            effects.append(Send(conn.id, push(conn.topic, "conversation_lifecycle", payload)))
    return effects


def release(conn: Connection, conversations: dict[str, Conversation]) -> None:
    """`conn` has gone: the conversations it owned are free to be registered again."""
    for conversation_id in conn.registered:
        conversation = conversations.get(conversation_id)
        if conversation is None or conversation.owner != conn.id:
            continue
        conversation.owner, conversation.released, conversation.owner_was_bound = None, True, conn.bound
        for route in conversation.routes.values():
            route.connection_id = None


def serve_elsewhere(conversation: Conversation, connections: dict[str, Connection], where: str | None) -> list[Effect]:
    """An agent of another process (`where`) owns the conversation, or none does now (None): this
    process's owner loses it, told with the `conversation_owned` refusal a second connection gets."""
    conversation.served_elsewhere = where
    owner = connections.get(conversation.owner) if conversation.owner else None
    if where is None or owner is None:
        return []
    owner.registered.pop(conversation.id, None)
    owner.told.discard(conversation.id)
    conversation.owner, conversation.released, conversation.routes = None, False, {}
    log.warning("conversation %s: %s registered first; refused agent %s here", conversation.id, where, owner.id)
    assert owner.customer_id is not None
    return [
        Send(owner.id, reply_error(_owned_elsewhere(conversation), owner.topic or "phoenix")),
        Publish(
            ErrorOccurred(
                where="agent gateway",
                message=f"agent {owner.id} ({owner.customer_id}) lost conversation {conversation.id}: an agent on "
                f"{where} registered its tools first",
                hint="two agents with the same API key on different gateway nodes: stop one, or give each its own key",
            )
        ),
        ToolsChanged(conversation.id),
    ]


def _owned_elsewhere(conversation: Conversation) -> ProtocolError:
    return ProtocolError(
        "conversation_owned",
        f"conversation {conversation.id!r} is served by an agent connected to {conversation.served_elsewhere}, "
        "which registered its tools first; only that connection may register them, until it disconnects",
        details={"conversation_id": conversation.id, "owner": conversation.served_elsewhere},
    )


def _refused_tools(frame: Frame, conversation_id: str, refused: list[tuple[str, str]]) -> str:
    names = ", ".join(repr(name) for name, _ in refused)
    reasons = "; ".join(reason for _, reason in refused)
    error = ProtocolError(
        "invalid_tools",
        f"{len(refused)} tool(s) refused ({names}), the others are registered: {reasons}",
        ref=frame.ref,
        join_ref=frame.join_ref,
        details={"conversation_id": conversation_id, "refused": [{"name": n, "reason": r} for n, r in refused]},
    )
    return reply_error(error, frame.topic)


def _refuse_contested(conn: Connection, owner: Connection, frame: Frame, conversation: Conversation) -> list[Effect]:
    """Another connection of the customer tries to take a served conversation: refused, owner told."""
    log.log(
        logging.DEBUG if conn.id in conversation.contested_by else logging.WARNING,
        "agent %s (%s) tried to register tools for conversation %s, served by %s; refused",
        conn.id,
        conn.remote,
        conversation.id,
        owner.id,
    )
    error = ProtocolError(
        "conversation_owned",
        f"conversation {conversation.id!r} is served by another agent connection ({owner.id}); only the "
        "connection that registered first may register its tools, until it disconnects",
        ref=frame.ref,
        join_ref=frame.join_ref,
        details={"conversation_id": conversation.id, "owner": owner.id},
    )
    warning = {
        "message": (
            f"agent connection {conn.id} from {conn.remote or 'an unknown address'} tried to register tools "
            f"for conversation {conversation.id}, which this connection serves; it was refused"
        ),
        "code": "registration_refused",
        "conversation_id": conversation.id,
        "connection_id": conn.id,
        "remote": conn.remote,
    }
    refusal: list[Effect] = [Send(conn.id, reply_error(error, frame.topic))]
    if conn.id in conversation.contested_by:
        return refusal  # the owner hears once per refused connection, not once per attempt
    conversation.contested_by.add(conn.id)
    assert conn.customer_id is not None
    return [
        *refusal,
        Send(owner.id, push(owner.topic, "connection_warning", warning)),
        Publish(
            ErrorOccurred(
                where="agent gateway",
                message=f"agent {conn.id} ({conn.customer_id}) was refused conversation {conversation.id}: "
                f"{owner.id} serves it",
                hint="two agents with the same API key: stop one, or give each its own key",
            )
        ),
    ]
