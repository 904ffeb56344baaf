"""Two gateway nodes on one broker (docs/cluster.md): each node a real `AgentGateway` on its own websocket
port with a real agent process of the same customer, both `ToolRouterService`s and the worker's
`RemoteToolRouter` in this process. The first node whose agent registers owns the conversation; every
call goes to that node's subject, and the other node's agent is refused as a second connection is."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_core.bus import EventBus
from platform_core.cluster import RemoteToolRouter, Subjects, ToolRouterService, connect_broker
from platform_core.events import ErrorOccurred, Event, ToolCallUpdated
from tests.agents_helpers import Platform, running_gateway, spawn_agent, stop, wait_until, write_agent
from tests.cluster_helpers import free_port, nats_server


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@dataclass
class Node:
    gateway: Platform
    service: ToolRouterService
    agent: object  # the agent's Popen, None until started

    @property
    def registered(self) -> bool:
        return any("c1" in a.tools for a in self.gateway.gateway.agents())


@dataclass
class TwoNodes:
    a: Node
    b: Node
    router: RemoteToolRouter
    events: list[Event]

    def node(self, node_id: str) -> Node:
        return self.a if node_id == self.a.service.node_id else self.b


@contextlib.asynccontextmanager
async def two_nodes(broker_url: str, prefix: str) -> AsyncIterator[TwoNodes]:
    subjects = Subjects(prefix)
    async with running_gateway() as gw_a, running_gateway() as gw_b:
        clients = [await connect_broker(broker_url, name=n) for n in ("node-a", "node-b", "worker")]
        a = Node(gw_a, ToolRouterService(clients[0], gw_a.gateway, gw_a.bus, subjects=subjects, node_id="node-a"), None)
        b = Node(gw_b, ToolRouterService(clients[1], gw_b.gateway, gw_b.bus, subjects=subjects, node_id="node-b"), None)
        bus = EventBus()
        events: list[Event] = []
        bus.subscribe(events.append)
        router = RemoteToolRouter(clients[2], bus, subjects=subjects)
        try:
            await a.service.start()
            await b.service.start()
            await router.start()
            yield TwoNodes(a, b, router, events)
        finally:
            for node in (a, b):
                if node.agent is not None:
                    await stop(node.agent)  # type: ignore[arg-type]
            await router.aclose()
            await a.service.stop()
            await b.service.stop()
            for client in clients:
                await client.close()


async def _agent_on(node: Node, tmp_path: Path) -> None:
    node.agent = spawn_agent(write_agent(tmp_path / node.service.node_id), node.gateway.url(), "key-acme")
    await wait_until(lambda: any(a.joined for a in node.gateway.gateway.agents()), 15, "the agent to join")


async def test_with_agents_on_two_nodes_the_first_to_register_owns_the_conversation(
    broker_url: str, tmp_path: Path
) -> None:
    async with two_nodes(broker_url, "n1") as c:
        await _agent_on(c.a, tmp_path)
        await _agent_on(c.b, tmp_path)
        await c.router.conversation_started("c1", "test", "acme")  # both nodes' agents hear of it and register
        assert await c.router.wait_for_tools("c1", 10)
        owner_id = c.router.conversations["c1"]
        assert owner_id in ("node-a", "node-b")
        owner, other = c.node(owner_id), c.b if owner_id == "node-a" else c.a
        await wait_until(lambda: not other.registered, 5, "the other node to refuse its agent's registration")
        assert other.gateway.gateway.tools_for("c1") == [] and owner.gateway.gateway.tools_for("c1")
        for i in range(5):  # every call reaches the owner's agent process, none the other's
            outcome = await c.router.call_tool("c1", "get_weather", {"location": f"city {i}"})
            assert outcome.status == "done", outcome
            assert outcome.result["pid"] == owner.agent.pid  # type: ignore[attr-defined]
        assert [e for e in other.gateway.events if isinstance(e, ToolCallUpdated)] == []
        # Refused either way: revoked after it registered, or refused when it registered after the news.
        await wait_until(
            lambda: any(
                isinstance(e, ErrorOccurred) and f"gateway node {owner_id}" in e.message for e in other.gateway.events
            ),
            5,
            "the other node to tell why its agent lost c1",
        )


async def test_a_late_agent_on_another_node_is_refused_and_takes_the_conversation_once_the_owner_leaves(
    broker_url: str, tmp_path: Path
) -> None:
    async with two_nodes(broker_url, "n2") as c:
        await _agent_on(c.a, tmp_path)
        await c.router.conversation_started("c1", "test", "acme")
        assert await c.router.wait_for_tools("c1", 10) and c.router.conversations["c1"] == "node-a"
        await _agent_on(c.b, tmp_path)  # joins late: node-b offers it c1, its registration is refused
        await wait_until(
            lambda: any(
                isinstance(e, ErrorOccurred) and "conversation_owned" in e.message and "node-a" in e.message
                for e in c.b.gateway.events
            ),
            10,
            "node-b to refuse its agent's registration for c1",
        )
        assert not c.b.registered and c.router.conversations["c1"] == "node-a"
        outcome = await c.router.call_tool("c1", "echo", {"value": "x"})
        assert outcome.status == "done" and outcome.result["conversation"] == "c1"
        await stop(c.a.agent)  # type: ignore[arg-type]
        c.a.agent = None
        # released, then offered again on node-b (conversation_ready): its agent registers and owns it
        await wait_until(lambda: c.router.conversations["c1"] == "node-b", 5, "node-b's agent to take c1")
        assert c.b.registered
        moved = await c.router.call_tool("c1", "echo", {"value": "y"})
        assert moved.status == "done" and moved.result == {"value": "y", "conversation": "c1", "count": 1}


async def test_a_call_to_a_node_that_dies_mid_call_fails_at_once_and_the_other_node_still_serves(
    broker_url: str, tmp_path: Path
) -> None:
    async with two_nodes(broker_url, "n3") as c:
        await _agent_on(c.a, tmp_path)
        await c.router.conversation_started("c1", "test", "acme")
        await c.router.conversation_started("c2", "test", "acme")
        assert await c.router.wait_for_tools("c1", 10) and await c.router.wait_for_tools("c2", 10)
        assert c.router.conversations == {"c1": "node-a", "c2": "node-a"}
        call = asyncio.create_task(c.router.call_tool("c1", "slow", {"seconds": 20}))
        await wait_until(lambda: any(a.pending_calls for a in c.a.gateway.gateway.agents()), 5, "the call to reach it")
        started = time.monotonic()
        await c.a.service._nc.close()  # node-a's broker connection gone, as when its process dies
        outcome = await call
        elapsed = time.monotonic() - started
        assert outcome.status == "error" and "gateway node node-a is gone" in (outcome.error or ""), outcome
        assert elapsed < 1.0, f"took {elapsed:.2f} s"
        assert c.router.conversations == {"c1": None, "c2": None}  # both of node-a's are released
        await c.router.conversation_started("c3", "test", "acme")  # node-b, with no agent, still answers
        assert not c.router.has_agents("c3")


async def test_after_a_broker_restart_everything_reconnects_and_calls_still_reach_the_owner(tmp_path: Path) -> None:
    port = free_port()
    with contextlib.ExitStack() as first:
        url = first.enter_context(nats_server(tmp_path / "first", port))
        async with two_nodes(url, "n4") as c:
            await _agent_on(c.a, tmp_path)
            await _agent_on(c.b, tmp_path)
            await c.router.conversation_started("c1", "test", "acme")
            assert await c.router.wait_for_tools("c1", 10)
            owner_id = c.router.conversations["c1"]
            assert owner_id is not None
            owner = c.node(owner_id)
            clients = [c.a.service._nc, c.b.service._nc, c.router._nc]
            first.close()  # the broker stops
            await wait_until(lambda: not any(nc.is_connected for nc in clients), 5, "every client to notice")
            away = await c.router.call_tool("c1", "get_weather", {"location": "Oslo"})
            assert away.status == "error" and "unreachable" in (away.error or "")
            with nats_server(tmp_path / "second", port):
                await wait_until(lambda: all(nc.is_connected for nc in clients), 10, "every client to reconnect")
                for nc in clients:
                    await nc.flush()  # its subscriptions restored at the broker
                for city in ("Lisbon", "Porto", "Faro"):  # still the owner's agent, never the other's
                    outcome = await c.router.call_tool("c1", "get_weather", {"location": city})
                    assert outcome.status == "done" and outcome.result["pid"] == owner.agent.pid, outcome  # type: ignore[attr-defined]
                await c.router.conversation_started("c2", "test", "acme")  # a new one is served as well
                assert await c.router.wait_for_tools("c2", 10)
                assert c.router.conversations["c2"] in ("node-a", "node-b")
                await c.router.conversation_ended("c2")
