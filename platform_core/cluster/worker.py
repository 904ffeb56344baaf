"""`RemoteToolRouter`: the voice loop's `ToolRouter` on a media worker, over NATS to the gateway nodes.

The worker holds no agent connection. Its conversations' tools are cached locally (the voice loop asks
`tools_for` and `has_agents` synchronously), kept current by the nodes' `tools_changed` snapshots; the
worker decides which node owns each conversation (cluster/views.py) and tells the nodes. A call is one
request to the owning node's own subject, whose reply is the outcome; the worker publishes the same
`ToolCallUpdated` lifecycle on its own bus as the in-process gateway does, under its own call id. No node
listening fails the call at once (the broker answers "no responders"), and so does the owner vanishing
mid-call (`node_gone`: told by presence, or by the probe that pings the owner while calls are pending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any

from platform_core.bus import EventBus
from platform_core.cluster import messages
from platform_core.cluster.liveness import PROBE_EVERY_S, OwnerProbe
from platform_core.cluster.messages import CallReply, CallRequest, CancelCalls, ConversationOwner, ToolsSnapshot
from platform_core.cluster.subjects import Subjects
from platform_core.cluster.views import ConversationView
from platform_core.events import ErrorOccurred, ToolCallUpdated
from platform_core.pipeline.tools import ToolOutcome, ToolSpec

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

REPLY_MARGIN_S = 1.0  # past the gateway's own timeout: its "timeout" outcome arrives before ours fires
NO_NODE_HINT = "start a gateway node (ToolRouterService) on the same broker and prefix"


@dataclass
class _Pending:
    node: str | None  # the node the call went to (None: not sent yet)
    conversation_id: str
    turn_id: int | None
    name: str
    arguments: dict[str, Any]
    started_at: float
    future: asyncio.Future[ToolOutcome]


class RemoteToolRouter:
    """Implements `ToolRouter` for a worker; `await start()` before the first conversation."""

    def __init__(
        self,
        broker: Client,
        bus: EventBus,
        *,
        subjects: Subjects | None = None,
        default_tool_timeout_s: float = 30.0,
        control_timeout_s: float = 2.0,
        probe_every_s: float = PROBE_EVERY_S,
    ) -> None:
        self._nc = broker
        self._bus = bus
        self._subjects = subjects or Subjects()
        self._default_timeout_s = default_tool_timeout_s
        self._control_timeout_s = control_timeout_s  # conversation start/end
        self._conversations: dict[str, ConversationView] = {}
        self._ready: dict[str, asyncio.Event] = {}  # set once a conversation has an owner with tools
        self._pending: dict[str, _Pending] = {}
        self._call_prefix = secrets.token_hex(4)
        self._call_seq = count(1)
        self._subscription: Subscription | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._probe = OwnerProbe(broker, self._subjects, probe_every_s, self.node_gone)

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(self._subjects.tools_changed, cb=self._on_tools_changed)

    async def aclose(self) -> None:
        """Cancel pending calls (they return cancelled) and stop listening; the broker stays open."""
        for call_id in list(self._pending):
            self._finish(call_id, "cancelled", error="the worker is shutting down")
        await self._probe.aclose()
        if self._subscription is not None and not self._nc.is_closed:
            await self._subscription.unsubscribe()
        self._subscription = None
        await asyncio.gather(*self._background, return_exceptions=True)

    @property
    def conversations(self) -> dict[str, str | None]:
        """Each conversation of this worker and the node that owns it (None: none yet)."""
        return {c: view.owner for c, view in self._conversations.items()}

    def node_gone(self, node: str, why: str) -> None:
        """`node` is gone (its presence expired, or it stopped answering): its calls fail now with `why`,
        its conversations are free for another node's agent to register."""
        for call_id in [c for c, p in self._pending.items() if p.node == node]:
            self._finish(call_id, "error", error=f"gateway node {node} is gone ({why}); the call's result is lost")
        for conversation_id, view in self._conversations.items():
            if view.drop_node(node):
                log.warning("conversation %s: its owning gateway node %s is gone (%s)", conversation_id, node, why)
                self._tell_owner(conversation_id, None)

    # --- ToolRouter: conversations and tools -----------------------------------------------------------

    async def conversation_started(self, conversation_id: str, agent_id: str | None, customer_id: str) -> None:
        self._conversations.setdefault(conversation_id, ConversationView())  # snapshots may come before the reply
        self._ready.setdefault(conversation_id, asyncio.Event())
        start = messages.ConversationStart(conversation_id, agent_id, customer_id)
        reply = await self._control(self._subjects.started, start.to_bytes(), self._control_timeout_s)
        if isinstance(reply, str):
            log.warning("conversation %s: no agent was told of it: %s", conversation_id, reply)
            self._bus.publish(
                ErrorOccurred(
                    where="cluster",
                    message=f"the agents were not told of conversation {conversation_id}: {reply}",
                    hint=NO_NODE_HINT,
                    conversation_id=conversation_id,
                )
            )
            return
        self._apply_snapshot(reply.get("tools"))

    async def conversation_ended(self, conversation_id: str) -> None:
        for call_id in [c for c, p in self._pending.items() if p.conversation_id == conversation_id]:
            self._finish(call_id, "cancelled", error="the conversation ended")
        self._conversations.pop(conversation_id, None)
        self._ready.pop(conversation_id, None)
        end = messages.ConversationEnd(conversation_id)
        reply = await self._control(self._subjects.ended, end.to_bytes(), self._control_timeout_s)
        if isinstance(reply, str):
            log.warning("conversation %s: its end was not delivered: %s", conversation_id, reply)

    def tools_for(self, conversation_id: str) -> list[ToolSpec]:
        view = self._conversations.get(conversation_id)
        return view.tools if view else []

    def has_agents(self, conversation_id: str) -> bool:
        view = self._conversations.get(conversation_id)
        return view is not None and view.has_agents

    async def wait_for_tools(self, conversation_id: str, timeout: float) -> list[ToolSpec]:
        """The owner's tools, waiting up to `timeout` for the first snapshot with tools (the nodes push
        theirs on every registration, so nothing is polled)."""
        ready = self._ready.get(conversation_id)
        if ready is not None and not self.tools_for(conversation_id):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), timeout)
        return self.tools_for(conversation_id)

    # --- ToolRouter: calls -----------------------------------------------------------------------------

    async def call_tool(
        self, conversation_id: str, name: str, arguments: dict[str, Any], *, turn_id: int | None = None
    ) -> ToolOutcome:
        loop = asyncio.get_running_loop()
        call_id = f"call_{self._call_prefix}_{next(self._call_seq)}"
        arguments = dict(arguments)
        self._bus.publish(
            ToolCallUpdated(
                conversation_id=conversation_id,
                turn_id=turn_id,
                call_id=call_id,
                name=name,
                arguments=arguments,
                status="started",
            )
        )
        future: asyncio.Future[ToolOutcome] = loop.create_future()
        view = self._conversations.get(conversation_id)
        node = view.owner if view else None
        self._pending[call_id] = _Pending(node, conversation_id, turn_id, name, arguments, loop.time(), future)
        request = CallRequest(call_id, conversation_id, name, arguments, turn_id)
        sending = asyncio.create_task(self._send_call(node, request))
        try:
            return await future
        except asyncio.CancelledError:  # barge-in or hang-up: abandoned, not failed; the node is told
            self._finish(call_id, "cancelled", error="cancelled by the platform")
            self._forward_cancel(node, CancelCalls(conversation_id, turn_id, call_id, "cancelled by the platform"))
            raise
        finally:
            sending.cancel()
            self._pending.pop(call_id, None)
            self._probe.watch({p.node for p in self._pending.values() if p.node})

    def cancel_tool_calls(self, conversation_id: str, *, turn_id: int | None = None, reason: str = "") -> None:
        reason = reason or "cancelled by the platform"
        matching = {
            call_id: p.node
            for call_id, p in self._pending.items()
            if p.conversation_id == conversation_id and turn_id in (None, p.turn_id)
        }
        for call_id in matching:
            self._finish(call_id, "cancelled", error=reason)
        for node in set(matching.values()):
            self._forward_cancel(node, CancelCalls(conversation_id, turn_id, None, reason))

    # --- the wire --------------------------------------------------------------------------------------

    async def _send_call(self, node: str | None, request: CallRequest) -> None:
        """Send one call to the owning node and finish it with its answer, or with why there is none."""
        from nats import errors as nats_errors

        timeout = self._timeout_for(request.conversation_id, request.name)
        if node is None:
            why = "no agent has registered tools for the conversation"
            self._finish(request.call_id, "error", error=f"no gateway node serves tool calls ({why}); {NO_NODE_HINT}")
            return
        if not self._nc.is_connected:
            self._finish(request.call_id, "error", error="the message broker is unreachable; the tool was not called")
            return
        self._probe.watch({p.node for p in self._pending.values() if p.node})
        try:
            subject = self._subjects.node_call(node)
            msg = await self._nc.request(subject, request.to_bytes(), timeout=timeout + REPLY_MARGIN_S)
            reply = CallReply.from_json(messages.read_reply(msg.data))
        except nats_errors.NoRespondersError:
            self.node_gone(node, "it no longer answers on the broker")
            self._finish(request.call_id, "error", error=f"no gateway node serves tool calls; {NO_NODE_HINT}")
        except TimeoutError:
            error = f"{request.name} got no answer from gateway node {node} within {timeout + REPLY_MARGIN_S:g} s"
            self._finish(request.call_id, "timeout", error=error)
        except messages.RemoteError as exc:
            self._finish(request.call_id, "error", error=f"gateway node {node} refused the call: {exc}")
        except (messages.MessageError, nats_errors.Error) as exc:
            self._finish(request.call_id, "error", error=f"the tool call failed on the way: {exc}")
        else:
            self._finish(request.call_id, reply.status, result=reply.result, error=reply.error)

    async def _control(self, subject: str, payload: bytes, timeout: float) -> dict[str, Any] | str:
        """A request to the gateway nodes: the first reply's fields, or why there is none (a sentence)."""
        from nats import errors as nats_errors

        if not self._nc.is_connected:
            return "the message broker is unreachable"
        try:
            msg = await self._nc.request(subject, payload, timeout=timeout)
            return messages.read_reply(msg.data)
        except nats_errors.NoRespondersError:
            return "no gateway node is listening"
        except TimeoutError:
            return f"no gateway node answered within {timeout:g} s"
        except (messages.RemoteError, messages.MessageError, nats_errors.Error) as exc:
            return str(exc) or type(exc).__name__

    def _forward_cancel(self, node: str | None, cancel: CancelCalls) -> None:
        if node is not None and self._nc.is_connected:
            self._spawn(self._nc.publish(self._subjects.node_cancel(node), cancel.to_bytes()))

    def _tell_owner(self, conversation_id: str, node: str | None) -> None:
        if self._nc.is_connected:
            owner = ConversationOwner(conversation_id, node)
            self._spawn(self._nc.publish(self._subjects.owner, owner.to_bytes()))

    async def _on_tools_changed(self, msg: Msg) -> None:
        try:
            self._apply_snapshot(messages.decode(msg.data))
        except Exception:  # one bad message must not stop the subscription
            log.exception("ignored a malformed tools_changed message")

    def _apply_snapshot(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise messages.MessageError("a tools snapshot must be an object")
        snapshot = ToolsSnapshot.from_json(value)
        view = self._conversations.get(snapshot.conversation_id)
        if view is None:
            return  # another worker's conversation
        owner = view.owner
        if not view.apply(snapshot):
            if owner is not None and snapshot.node != owner and snapshot.has_agents:
                self._probe.check(owner)  # an agent failing over from a dead owner waits on its release
            return  # an old snapshot, or the owner unchanged
        self._tell_owner(snapshot.conversation_id, view.owner)
        ready = self._ready.get(snapshot.conversation_id)
        if ready is not None and view.owner is not None:
            ready.set()
        elif ready is not None:
            ready.clear()

    # --- bookkeeping -----------------------------------------------------------------------------------

    def _timeout_for(self, conversation_id: str, name: str) -> float:
        view = self._conversations.get(conversation_id)
        timeout = view.timeout_for(name) if view else None
        return timeout or self._default_timeout_s

    def _finish(self, call_id: str, status: Any, *, result: Any = None, error: str | None = None) -> None:
        """End a pending call once: publish its outcome and hand it to the awaiting `call_tool`."""
        pending = self._pending.pop(call_id, None)
        if pending is None:
            return
        duration = asyncio.get_running_loop().time() - pending.started_at
        outcome = ToolOutcome(call_id, pending.name, pending.arguments, status, result, error, duration)
        self._bus.publish(
            ToolCallUpdated(
                conversation_id=pending.conversation_id,
                turn_id=pending.turn_id,
                call_id=call_id,
                name=pending.name,
                arguments=pending.arguments,
                status=status,
                result=result,
                error=error,
                duration_s=duration,
            )
        )
        if not pending.future.done():  # done: its call_tool was cancelled (the event above still tells)
            pending.future.set_result(outcome)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
