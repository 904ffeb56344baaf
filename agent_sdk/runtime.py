"""One connection serving one or more conversations: lifecycle, tool calls, re-registration.

A standalone `Agent` runs a runtime whose factory returns the agent itself for every conversation; a
`Dispatcher` runs one whose factory makes a new agent instance per conversation. Either way a tool call
is routed by its conversation id to the instance bound to that conversation.

The runtime knows an agent only as `ServedAgent` (what it calls on one), so agent.py imports this
module and not the other way round.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from agent_sdk.connection import Connection
from agent_sdk.tools import ToolCall, ToolDefinition
from agent_sdk.wire import ServerMessage
from platform_core.protocol import TOOL_CALL_CANCELLED

log = logging.getLogger(__name__)

ANSWER_CACHE = 1024  # repeated call ids get the earlier answer, as in conversimple-sdk


class ServedAgent(Protocol):
    """What the runtime calls on an agent (`Agent` implements it). Underscored: these are agent_sdk's
    own, kept out of the names an agent author uses for tools and hooks."""

    @property
    def tools(self) -> Mapping[str, ToolDefinition]: ...

    def _conversation_bound(self, conversation_id: str) -> None: ...

    def _conversation_unbound(self, conversation_id: str) -> None: ...

    def _handler(self, hook: str) -> Callable[..., Any] | None:
        """The agent's handler for a lifecycle hook, or None (then the runtime skips that work)."""
        ...

    async def _fire(self, hook: str, *args: Any) -> None: ...

    def _in_conversation(self, conversation_id: str) -> AbstractContextManager[None]: ...


AgentT = TypeVar("AgentT", bound=ServedAgent)


class Runtime(Generic[AgentT]):
    def __init__(
        self,
        url: str | Sequence[str],
        api_key: str,
        customer_id: str,
        factory: Callable[[str, str | None], AgentT | None],
        on_error: Callable[[str, str, dict[str, Any]], Any] | None = None,
        **options: Any,
    ) -> None:
        self.connection = Connection(url, api_key, customer_id, self._on_message, self._on_connected, **options)
        self.factory = factory
        self.bindings: dict[str, AgentT] = {}
        self._started: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._answers: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._on_error = on_error
        self._resends: set[asyncio.Future[bool]] = set()

    async def start(self) -> None:
        await self.connection.start()

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self.connection.stop()
        for conversation_id in list(self.bindings):
            await self._end(conversation_id)

    def bind(self, conversation_id: str, agent: AgentT) -> None:
        self.bindings[conversation_id] = agent
        agent._conversation_bound(conversation_id)

    # --- platform events ---------------------------------------------------------------------------------

    async def _on_connected(self) -> None:
        for conversation_id, agent in list(self.bindings.items()):  # a new connection knows no tools
            await self._register(conversation_id, agent)

    async def _on_message(self, message: ServerMessage) -> None:
        event, payload = message.event, message.payload
        if event == "tool_call_request":
            self._spawn_call(payload)
        elif event == TOOL_CALL_CANCELLED:
            await self._cancel_call(payload)
        elif event == "conversation_ready":
            await self._begin(payload.get("conversation_id"), payload.get("agent_id"))
        elif event == "conversation_lifecycle":
            if payload.get("event") == "conversation_started":
                await self._begin(payload.get("conversation_id"), payload.get("agent_id"))
            elif payload.get("event") == "conversation_ended":
                await self._end(payload.get("conversation_id"))
        elif event == "phx_reply" and payload.get("status") == "error":
            await self._refused(message.ref, payload)
        elif event == "connection_warning":
            await self._warning(payload)
        elif event == "error_notification":
            await self._error(str(payload.get("error_type")), str(payload.get("error_message")), payload)
        elif event == "config_update":
            for agent in set(self.bindings.values()):
                await agent._fire("config_update", payload)
        else:
            log.debug("platform event %s ignored", event)

    async def _begin(self, conversation_id: Any, agent_id: Any) -> None:
        if not isinstance(conversation_id, str) or not conversation_id:
            return
        agent = self.bindings.get(conversation_id)
        if agent is None:
            agent = self.factory(conversation_id, agent_id if isinstance(agent_id, str) else None)
            if agent is None:
                return
            self.bind(conversation_id, agent)
            await self._register(conversation_id, agent)
        if conversation_id not in self._started:
            self._started.add(conversation_id)
            await agent._fire("conversation_started", conversation_id)

    async def _end(self, conversation_id: Any) -> None:
        agent = self.bindings.pop(conversation_id, None) if isinstance(conversation_id, str) else None
        if agent is None:
            return
        for call_id, task in list(self._tasks.items()):
            if getattr(task, "conversation_id", None) == conversation_id:
                task.cancel()
                self._tasks.pop(call_id, None)
        self._started.discard(conversation_id)
        await agent._fire("conversation_ended", conversation_id)
        agent._conversation_unbound(conversation_id)

    async def _refused(self, ref: str | None, payload: dict[str, Any]) -> None:
        """An error reply. `conversation_owned`: another connection serves that conversation, so this
        one lets it go (ends it here) rather than registering again at every reconnect."""
        response = payload.get("response")
        response = response if isinstance(response, dict) else {"reason": response}
        reason = str(response.get("reason"))
        log.error("the platform refused a message: %s", reason)
        await self._error("protocol_error", reason, {"ref": ref, **payload})
        if response.get("code") == "conversation_owned":
            await self._end(response.get("conversation_id"))

    async def _warning(self, payload: dict[str, Any]) -> None:
        """`connection_warning` (e.g. another connection tried to take a conversation this one serves):
        logged, and passed to the `on_connection_warning` hook of the conversation's agent."""
        message = str(payload.get("message") or "connection warning")
        log.warning("platform warning: %s", message)
        conversation_id = payload.get("conversation_id")
        agent = self.bindings.get(conversation_id) if isinstance(conversation_id, str) else None
        for target in [agent] if agent is not None else list(dict.fromkeys(self.bindings.values())):
            await target._fire("connection_warning", message, payload)

    async def _register(self, conversation_id: str, agent: AgentT) -> None:
        tools = [t.wire() for t in agent.tools.values()]
        await self.connection.send("register_conversation_tools", {"conversation_id": conversation_id, "tools": tools})

    async def _error(self, error_type: str, message: str, details: dict[str, Any]) -> None:
        if self._on_error is not None:
            result = self._on_error(error_type, message, details)
            if asyncio.iscoroutine(result):
                await result

    # --- tool calls ----------------------------------------------------------------------------------

    def _spawn_call(self, payload: dict[str, Any]) -> None:
        call_id = payload.get("call_id")
        if not isinstance(call_id, str) or call_id in self._tasks:
            return
        if call_id in self._answers:
            event, answer = self._answers[call_id]
            resend = asyncio.ensure_future(self.connection.send(event, answer))
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
            return
        task = asyncio.create_task(self._run_call(call_id, payload))
        task.conversation_id = payload.get("conversation_id")  # type: ignore[attr-defined]
        self._tasks[call_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(call_id, None))

    async def _cancel_call(self, payload: dict[str, Any]) -> None:
        """The platform abandoned a call (barge-in, hang-up): an async tool is cancelled where it awaits;
        a sync one cannot be stopped in its thread, but its result is dropped. Either way no answer is
        sent, and `on_tool_cancelled(call_id, reason)` runs."""
        call_id = payload.get("call_id")
        task = self._tasks.pop(call_id, None) if isinstance(call_id, str) else None
        if task is None:
            return  # already answered (the platform drops that answer as late) or never ours
        task.cancel()
        reason = str(payload.get("reason") or "cancelled by the platform")
        log.info("tool call %s cancelled by the platform: %s", call_id, reason)
        conversation_id = str(getattr(task, "conversation_id", None) or "")
        agent = self.bindings.get(conversation_id)
        if agent is not None and agent._handler("tool_cancelled") is not None:
            with agent._in_conversation(conversation_id):
                await agent._fire("tool_cancelled", call_id, reason)

    async def _run_call(self, call_id: str, payload: dict[str, Any]) -> None:
        conversation_id = str(payload.get("conversation_id") or "")
        name = str(payload.get("tool_name") or "")
        arguments = payload.get("arguments") or {}
        try:
            timeout = max(0.1, min(float(payload.get("timeout_seconds", 30.0)), 300.0))
        except (TypeError, ValueError):
            timeout = 30.0
        agent = self.bindings.get(conversation_id)
        answer: dict[str, Any] = {"call_id": call_id, "conversation_id": conversation_id, "tool_name": name}
        done, result = False, None
        try:
            if agent is None:
                raise LookupError(f"no agent instance serves conversation {conversation_id!r} here")
            definition = agent.tools.get(name)
            if definition is None:
                raise LookupError(f"this agent has no tool {name!r}")
            if not isinstance(arguments, dict):
                raise TypeError("arguments must be an object")
            if agent._handler("tool_called") is not None:
                await agent._fire("tool_called", ToolCall(call_id, name, arguments, conversation_id, timeout))
            # the platform's clock decides timeouts; ours (a second later) only stops a runaway tool
            with agent._in_conversation(conversation_id):
                async with asyncio.timeout(timeout + 1.0):
                    result = await definition.invoke(arguments)
            answer["result"], done = result, True
        except TimeoutError:
            answer["error"] = self._error_body(f"{name} timed out after {timeout:g} s")
        except Exception as exc:
            answer["error"] = self._error_body(f"{type(exc).__name__}: {exc}")
            log.warning("tool %s failed: %s", name, exc)
            if agent is not None:
                await agent._fire("error", "tool_error", answer["error"]["message"], answer)
        event = "tool_call_response" if done else "tool_call_error"
        try:
            await self.connection.send(event, answer)
        except (TypeError, ValueError) as exc:  # a result JSON cannot carry
            event, answer = "tool_call_error", {**answer, "error": self._error_body(f"bad result: {exc}")}
            answer.pop("result", None)
            done = False
            await self.connection.send(event, answer)
        self._answers[call_id] = (event, answer)
        if len(self._answers) > ANSWER_CACHE:
            self._answers.popitem(last=False)
        if done and agent is not None and agent._handler("tool_completed") is not None:
            await agent._fire("tool_completed", call_id, result)

    @staticmethod
    def _error_body(message: str) -> dict[str, str]:
        return {"message": message, "timestamp": datetime.now(UTC).isoformat()}
