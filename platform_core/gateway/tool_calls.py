"""Tool-call correlation, sans I/O: call ids, routing a call to its agent, answers, timeouts, cancellation.

`GatewayCore` composes one `ToolCalls` and shares its `connections` and `conversations` dicts with it;
like the core, every method takes the current time and returns a list of effects.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from itertools import count
from typing import Any

from platform_core.events import ToolCallUpdated
from platform_core.gateway.frames import Frame, ProtocolError, push
from platform_core.gateway.schema import check_arguments
from platform_core.gateway.state import Connection, Conversation, Effect, Finish, PendingCall, Publish, Route, Send
from platform_core.pipeline.tools import ToolOutcome
from platform_core.protocol import MAX_FRAME_BYTES, TOOL_CALL_CANCELLED

log = logging.getLogger(__name__)

RECENT_CALLS = 4096  # finished call ids remembered so late answers are recognised as late


class ToolCalls:
    def __init__(
        self,
        connections: dict[str, Connection],
        conversations: dict[str, Conversation],
        *,
        default_timeout_s: float,
        timeouts: dict[str, float],
    ) -> None:
        self.connections = connections  # the core's dicts, shared (not copied)
        self.conversations = conversations
        self.default_timeout_s = default_timeout_s
        self.timeouts = timeouts  # per tool name, set by the platform; wins over the agent's declaration
        self.pending: dict[str, PendingCall] = {}
        self._recent: OrderedDict[str, str] = OrderedDict()  # finished call id -> connection id
        self._call_prefix = secrets.token_hex(4)  # SDKs cache answers by call_id: never reuse one
        self._call_seq = count(1)

    def timeout_for(self, conversation_id: str, name: str) -> float:
        conversation = self.conversations.get(conversation_id)
        route = conversation.routes.get(name) if conversation else None
        declared = route.declared_timeout_s if route else None
        return self.timeouts.get(name) or declared or self.default_timeout_s

    def start(
        self, conversation_id: str, name: str, arguments: dict[str, Any], turn_id: int | None, now: float
    ) -> tuple[PendingCall | ToolOutcome, list[Effect]]:
        """Send a call to its agent: (the pending call, effects), or (an error outcome, effects)."""
        call_id = f"call_{self._call_prefix}_{next(self._call_seq)}"
        arguments = dict(arguments)
        started = ToolCallUpdated(
            conversation_id=conversation_id,
            turn_id=turn_id,
            call_id=call_id,
            name=name,
            arguments=arguments,
            status="started",
        )
        effects: list[Effect] = [Publish(started)]
        problem, route = self._route(conversation_id, name, arguments)
        conn = self.connections.get(route.connection_id) if route and route.connection_id else None
        if problem or route is None or conn is None:
            problem = problem or f"the agent providing {name} is disconnected; it may reconnect shortly"
            outcome = ToolOutcome(call_id, name, arguments, "error", error=problem)
            effects.append(Publish(_update(outcome, conversation_id, turn_id)))
            return outcome, effects
        timeout = self.timeout_for(conversation_id, name)
        call = PendingCall(call_id, conversation_id, conn.id, name, arguments, turn_id, now, now + timeout)
        self.pending[call_id] = call
        conn.pending.add(call_id)
        payload = {
            "call_id": call_id,
            "tool_name": name,
            "arguments": arguments,
            "timeout_seconds": timeout,
            "conversation_id": conversation_id,
        }
        effects.append(Send(conn.id, push(conn.topic, "tool_call_request", payload)))
        return call, effects

    def expire(self, call_id: str, now: float) -> list[Effect]:
        call = self.pending.get(call_id)
        if call is None:
            return []
        timeout = call.deadline - call.started_at
        return self.finish(call, "timeout", now, error=f"{call.name} did not answer within {timeout:g} s")

    def expire_overdue(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for call in [c for c in self.pending.values() if now >= c.deadline]:
            effects += self.expire(call.call_id, now)
        return effects

    def cancel(self, call_id: str, now: float, reason: str) -> list[Effect]:
        """The platform abandons a pending call: it finishes as cancelled and its agent is told
        (`tool_call_cancelled`), so the agent can stop the tool; its answer, if one still comes, is late."""
        call = self.pending.get(call_id)
        if call is None:
            return []
        effects = self.finish(call, "cancelled", now, error=reason)
        conn = self.connections.get(call.connection_id)
        if conn is not None and conn.topic is not None:
            notice = {
                "call_id": call.call_id,
                "conversation_id": call.conversation_id,
                "tool_name": call.name,
                "reason": reason,
            }
            effects.append(Send(conn.id, push(conn.topic, TOOL_CALL_CANCELLED, notice)))
        return effects

    def cancel_matching(
        self, conversation_id: str, turn_id: int | None, now: float, reason: str = "the conversation ended"
    ) -> list[Effect]:
        """Cancel the conversation's pending calls (only those of `turn_id` when it is not None)."""
        effects: list[Effect] = []
        for call in list(self.pending.values()):
            if call.conversation_id == conversation_id and turn_id in (None, call.turn_id):
                effects += self.cancel(call.call_id, now, reason)
        return effects

    def fail_disconnected(self, conn: Connection, reason: str, now: float) -> list[Effect]:
        """The calls pending on a connection that has gone end as errors at once."""
        effects: list[Effect] = []
        for call_id in sorted(conn.pending):
            call = self.pending.get(call_id)
            if call is not None:
                error = f"the agent providing {call.name} disconnected during the call ({reason})"
                effects += self.finish(call, "error", now, error=error)
        return effects

    def answer(self, conn: Connection, frame: Frame, now: float) -> list[Effect]:
        """A `tool_call_response` or `tool_call_error` frame from the agent."""
        call_id = frame.payload.get("call_id")
        if not isinstance(call_id, str):
            raise ProtocolError("invalid_payload", f"{frame.event} needs the call_id of the request")
        call = self.pending.get(call_id)
        if call is None or call.connection_id != conn.id:
            if self._recent.get(call_id) == conn.id:
                log.info("late answer for %s from %s dropped (the call already finished)", call_id, conn.id)
                return []
            raise ProtocolError("unknown_call_id", f"no pending call {call_id!r} was sent to this connection")
        if frame.event == "tool_call_response":
            return self.finish(call, "done", now, result=frame.payload.get("result"))
        error = frame.payload.get("error")
        message = str((error.get("message") if isinstance(error, dict) else error) or "failed without a message")
        # conversimple-sdk times a call out on the same clock as ours: its report at the deadline is a timeout
        status = "timeout" if "timed out" in message and now >= call.deadline - 0.05 else "error"
        return self.finish(call, status, now, error=message)

    def fail_oversized_answer(self, conn: Connection, data: str | bytes, now: float) -> list[Effect]:
        """An oversized answer still ends its call at once (rather than by timeout), if it can be read."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError):
            return []
        payload = raw.get("payload") if isinstance(raw, dict) else None
        call_id = payload.get("call_id") if isinstance(payload, dict) else None
        call = self.pending.get(call_id) if isinstance(call_id, str) else None
        if call is None or call.connection_id != conn.id:
            return []
        limit = f"{MAX_FRAME_BYTES // 2**20} MiB"
        return self.finish(call, "error", now, error=f"the result of {call.name} exceeded the {limit} frame limit")

    def finish(
        self, call: PendingCall, status: Any, now: float, *, result: Any = None, error: str | None = None
    ) -> list[Effect]:
        self.pending.pop(call.call_id, None)
        conn = self.connections.get(call.connection_id)
        if conn is not None:
            conn.pending.discard(call.call_id)
        self._recent[call.call_id] = call.connection_id
        if len(self._recent) > RECENT_CALLS:
            self._recent.popitem(last=False)
        outcome = ToolOutcome(
            call.call_id,
            call.name,
            call.arguments,
            status,
            result=result,
            error=error,
            duration_s=now - call.started_at,
        )
        return [Publish(_update(outcome, call.conversation_id, call.turn_id)), Finish(outcome)]

    def _route(self, conversation_id: str, name: str, arguments: dict[str, Any]) -> tuple[str, Route | None]:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return f"conversation {conversation_id!r} is not active", None
        route = conversation.routes.get(name)
        if route is None:
            known = ", ".join(sorted(conversation.routes)) or "none"
            return f"no agent provides the tool {name!r} in this conversation (registered: {known})", None
        return check_arguments(route.spec, arguments) or "", route


def _update(outcome: ToolOutcome, conversation_id: str, turn_id: int | None) -> ToolCallUpdated:
    return ToolCallUpdated(
        conversation_id=conversation_id,
        turn_id=turn_id,
        call_id=outcome.call_id,
        name=outcome.name,
        arguments=outcome.arguments,
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        duration_s=outcome.duration_s,
    )
