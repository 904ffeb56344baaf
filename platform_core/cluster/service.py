"""`ToolRouterService`: a gateway node serves the workers' tool routing from its local `AgentGateway`.

Each request on the cluster's subjects (platform_core/cluster/subjects.py) is handled in its own task by
calling the gateway's real `ToolRouter` methods, so a slow tool never holds up another call; a malformed
payload gets an error reply and the service goes on. Tool calls, cancels and pings come on the node's
own subjects (`node.<id>.…`): a worker addresses the node whose agent owns the conversation. A
conversation's tools are published on `tools_changed` when it starts and whenever an agent registers,
connects or disconnects (read from the node's bus). A worker's `conversation.owner` naming another node
makes this node refuse its own agents' registrations for it, as one gateway refuses a second connection.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from itertools import count
from typing import TYPE_CHECKING, Any

from platform_core.bus import EventBus
from platform_core.cluster import messages
from platform_core.cluster.messages import (
    CallRequest,
    CancelCalls,
    ConversationEnd,
    ConversationOwner,
    ConversationStart,
    RemoteTool,
    ToolsQuery,
    ToolsSnapshot,
)
from platform_core.cluster.subjects import QUEUE_GROUP, Subjects, check_node_id
from platform_core.events import AgentConnected, AgentDisconnected, Event, ToolsRegistered
from platform_core.gateway import AgentGateway

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[dict[str, Any]]]
MAX_WAIT_S = 60.0  # the longest a tools query may hold a handler


class ToolRouterService:
    """Serves `RemoteToolRouter`s from `gateway`; `await start()`, `await stop()`."""

    def __init__(
        self,
        broker: Client,
        gateway: AgentGateway,
        bus: EventBus,
        *,
        subjects: Subjects | None = None,
        node_id: str | None = None,
    ) -> None:
        self._nc = broker
        self._gateway = gateway
        self._bus = bus
        self._subjects = subjects or Subjects()
        self.node_id = check_node_id(node_id or f"gateway-{secrets.token_hex(3)}")
        self._customers: dict[str, str] = {}  # conversation id -> customer, for the ones started here
        self._calls: dict[str, asyncio.Task[Any]] = {}  # the worker's call id -> the task serving it
        self._seq = count(1)
        self._subscriptions: list[Subscription] = []
        self._unsubscribe_bus: Callable[[], None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # requests being served
        self._publishing: set[asyncio.Future[Any]] = set()  # tools_changed snapshots on their way

    async def start(self) -> None:
        s = self._subjects
        routes: list[tuple[str, str, Handler]] = [
            (s.node_call(self.node_id), "", self._call),
            (s.node_ping(self.node_id), "", self._ping),
            (s.tools, QUEUE_GROUP, self._tools),
            (s.started, "", self._started),
            (s.ended, "", self._ended),
        ]
        for subject, queue, handler in routes:
            self._subscriptions.append(await self._nc.subscribe(subject, queue=queue, cb=self._serving(handler)))
        self._subscriptions.append(await self._nc.subscribe(s.node_cancel(self.node_id), cb=self._on_cancel))
        self._subscriptions.append(await self._nc.subscribe(s.owner, cb=self._on_owner))
        await self._nc.flush()  # subscribed at the broker before start() returns
        self._unsubscribe_bus = self._bus.subscribe(self._on_event)

    async def stop(self) -> None:
        """Stop serving (workers' new requests find no responders); requests in flight are abandoned."""
        if not self._nc.is_closed:  # closed: the broker dropped every subscription already
            for subscription in self._subscriptions:
                await subscription.unsubscribe()
        self._subscriptions.clear()
        if self._unsubscribe_bus is not None:
            self._unsubscribe_bus()
            self._unsubscribe_bus = None
        for task in list(self._tasks):
            task.cancel()  # requests being served: their workers' calls end by their own timeouts
        await asyncio.gather(*self._tasks, *self._publishing, return_exceptions=True)  # publishes finish
        if self._nc.is_connected:
            await self._nc.flush()

    # --- handlers: payload in, reply fields out --------------------------------------------------------

    async def _started(self, data: bytes) -> dict[str, Any]:
        start = ConversationStart.from_bytes(data)
        added = start.conversation_id not in self._customers
        if added:  # before its agents hear of it: their registrations are published from here on
            self._customers[start.conversation_id] = start.customer_id
        try:
            await self._gateway.conversation_started(start.conversation_id, start.agent_id, start.customer_id)
        except ValueError as exc:  # the id is another customer's conversation
            if added:
                self._customers.pop(start.conversation_id, None)
            raise messages.RemoteError(str(exc)) from None
        self._publish_snapshot(start.conversation_id)  # the worker hears every node, not only the first reply
        return {"node": self.node_id, "tools": self._snapshot(start.conversation_id).to_json()}

    async def _ended(self, data: bytes) -> dict[str, Any]:
        end = ConversationEnd.from_bytes(data)
        self._customers.pop(end.conversation_id, None)
        await self._gateway.conversation_ended(end.conversation_id)
        return {"node": self.node_id}

    async def _tools(self, data: bytes) -> dict[str, Any]:
        query = ToolsQuery.from_bytes(data)
        wait_s = min(max(0.0, float(query.wait_s)), MAX_WAIT_S)
        await self._gateway.wait_for_tools(query.conversation_id, wait_s)
        return {"node": self.node_id, "tools": self._snapshot(query.conversation_id).to_json()}

    def end_conversations(self, conversation_ids: list[str], why: str) -> None:
        """End these conversations here (their worker is gone, so no end will come): agents are told."""
        for conversation_id in [c for c in conversation_ids if c in self._customers]:
            log.warning("conversation %s ended: %s", conversation_id, why)
            self._customers.pop(conversation_id, None)
            self._spawn(self._gateway.conversation_ended(conversation_id))

    async def _ping(self, data: bytes) -> dict[str, Any]:
        return {"node": self.node_id}

    @property
    def conversations(self) -> list[str]:
        """The conversations this node has heard of and not yet heard end."""
        return list(self._customers)

    async def _call(self, data: bytes) -> dict[str, Any]:
        request = CallRequest.from_bytes(data)
        task = asyncio.current_task()
        if task is not None:
            self._calls[request.call_id] = task
        try:
            outcome = await self._gateway.call_tool(
                request.conversation_id, request.name, request.arguments, turn_id=request.turn_id
            )
        finally:
            self._calls.pop(request.call_id, None)
        reply = messages.CallReply(outcome.status, outcome.result, outcome.error, outcome.duration_s, outcome.call_id)
        return reply.to_json()

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            cancel = CancelCalls.from_bytes(msg.data)
        except messages.MessageError as exc:
            log.warning("ignored a malformed cancel message: %s", exc)
            return
        if cancel.call_id is not None:
            task = self._calls.get(cancel.call_id)
            if task is not None:
                task.cancel()  # the gateway cancels the call and tells its agent
            return
        reason = cancel.reason or "cancelled by the platform"
        self._gateway.cancel_tool_calls(cancel.conversation_id, turn_id=cancel.turn_id, reason=reason)

    async def _on_owner(self, msg: Msg) -> None:
        try:
            owner = ConversationOwner.from_bytes(msg.data)
        except messages.MessageError as exc:
            log.warning("ignored a malformed conversation owner message: %s", exc)
            return
        if owner.conversation_id not in self._customers:
            return  # not a conversation this node started
        where = None if owner.node in (None, self.node_id) else f"gateway node {owner.node}"
        self._gateway.conversation_served_elsewhere(owner.conversation_id, where)
        if where is not None:
            self._publish_snapshot(owner.conversation_id)  # its registration is gone here: the worker hears so

    # --- plumbing --------------------------------------------------------------------------------------

    def _serving(self, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        """A subscription callback that serves each message in its own task (the client runs one
        subscription's callbacks one after another)."""

        async def receive(msg: Msg) -> None:
            self._spawn(self._serve(handler, msg))

        return receive

    async def _serve(self, handler: Handler, msg: Msg) -> None:
        try:
            reply = messages.ok_reply(await handler(msg.data))
        except (messages.MessageError, messages.RemoteError) as exc:
            reply = messages.error_reply(str(exc))
        except asyncio.CancelledError:
            return  # the worker abandoned the call, or the service is stopping: nobody waits for a reply
        except Exception as exc:  # a bug costs one request, not the service
            log.exception("gateway node failed on %s", msg.subject)
            reply = messages.error_reply(f"the gateway node failed: {type(exc).__name__}: {exc}")
        if msg.reply and self._nc.is_connected:
            try:
                await msg.respond(reply)
            except Exception as exc:  # the broker went away meanwhile: the worker's request times out
                log.warning("could not reply on %s: %s: %s", msg.subject, type(exc).__name__, exc)

    def _snapshot(self, conversation_id: str) -> ToolsSnapshot:
        tools = tuple(
            RemoteTool(spec, self._gateway.tool_timeout(conversation_id, spec.name))
            for spec in self._gateway.tools_for(conversation_id)
        )
        has_agents = self._gateway.has_agents(conversation_id)
        return ToolsSnapshot(conversation_id, self.node_id, next(self._seq), has_agents, tools)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ToolsRegistered):
            changed = [event.conversation_id] if event.conversation_id in self._customers else []
        elif isinstance(event, AgentConnected | AgentDisconnected):
            changed = [c for c, customer in self._customers.items() if customer == event.customer_id]
        else:
            return
        for conversation_id in changed:
            self._publish_snapshot(conversation_id)

    def _publish_snapshot(self, conversation_id: str) -> None:
        if self._nc.is_connected:  # a task of its own set: cancelling a publish midway could garble the stream
            publish = asyncio.ensure_future(
                self._nc.publish(self._subjects.tools_changed, self._snapshot(conversation_id).to_bytes())
            )
            self._publishing.add(publish)
            publish.add_done_callback(self._publishing.discard)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
