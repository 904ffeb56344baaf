"""Tool calls across processes on NATS (docs/cluster.md): a real nats-server, a real gateway on a real
websocket port with a real agent in its own process, and the worker's `RemoteToolRouter` in this one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from platform_core.bus import EventBus
from platform_core.cluster import BrokerError, RemoteToolRouter, Subjects, ToolRouterService, connect_broker
from platform_core.cluster.presence import Member, Presence
from platform_core.events import ErrorOccurred, Event, ToolCallUpdated
from tests.agents_helpers import ROOT, Platform, running_gateway, spawn_agent, stop, wait_until, write_agent
from tests.cluster_helpers import free_port, nats_server


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real nats-server on a free loopback port, stopped by its PID."""
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@dataclass
class Cluster:
    node: Platform  # the gateway node: its AgentGateway, bus and events
    service: ToolRouterService
    router: RemoteToolRouter  # the worker's
    events: list[Event]  # the worker's bus
    agent: subprocess.Popen[bytes]
    subjects: Subjects


@contextlib.asynccontextmanager
async def cluster(broker_url: str, tmp_path: Path, prefix: str) -> AsyncIterator[Cluster]:
    subjects = Subjects(prefix)  # a prefix per test: nothing leaks between tests on the shared broker
    async with running_gateway() as node:
        node_nc = await connect_broker(broker_url, name="gateway-node")
        worker_nc = await connect_broker(broker_url, name="worker")
        service = ToolRouterService(node_nc, node.gateway, node.bus, subjects=subjects, node_id="node-1")
        worker_bus = EventBus()
        events: list[Event] = []
        worker_bus.subscribe(events.append)
        router = RemoteToolRouter(worker_nc, worker_bus, subjects=subjects)
        agent = spawn_agent(write_agent(tmp_path), node.url(), "key-acme")
        try:
            await service.start()
            await router.start()
            await wait_until(lambda: any(a.joined for a in node.gateway.agents()), 15, "the agent to join")
            yield Cluster(node, service, router, events, agent, subjects)
        finally:
            await stop(agent)
            await router.aclose()
            await service.stop()
            await worker_nc.close()
            await node_nc.close()


async def _start(c: Cluster, conversation: str = "c1") -> None:
    await c.router.conversation_started(conversation, "test", "acme")
    assert await c.router.wait_for_tools(conversation, 10), "the agent's tools never reached the worker"


async def test_a_tool_call_reaches_the_agent_in_its_process_and_returns_its_result(
    broker_url: str, tmp_path: Path
) -> None:
    async with cluster(broker_url, tmp_path, "t1") as c:
        await _start(c)
        names = {t.name for t in c.router.tools_for("c1")}
        assert {"get_weather", "explode", "slow"} <= names and c.router.has_agents("c1")
        weather = await c.router.call_tool("c1", "get_weather", {"location": "Lisbon"}, turn_id=3)
        assert weather.status == "done" and weather.result["location"] == "Lisbon"
        assert weather.result["pid"] == c.agent.pid  # ran in the agent's process
        updates = [e for e in c.events if isinstance(e, ToolCallUpdated) and e.call_id == weather.call_id]
        assert [u.status for u in updates] == ["started", "done"]  # on the worker's bus, as in one process
        assert updates[0].turn_id == 3 and updates[0].arguments == {"location": "Lisbon"}
        assert updates[1].result == weather.result and (updates[1].duration_s or 0) > 0
        on_node = [e for e in c.node.events if isinstance(e, ToolCallUpdated)]
        assert [u.status for u in on_node] == ["started", "done"]  # the node's bus tells its own story
        await c.router.conversation_ended("c1")
        assert c.router.tools_for("c1") == [] and not c.router.has_agents("c1")
        assert not c.node.gateway.has_agents("c1")  # the node ended it too


async def test_a_tool_that_raises_is_an_error_outcome_and_a_cancel_reaches_the_agent(
    broker_url: str, tmp_path: Path
) -> None:
    async with cluster(broker_url, tmp_path, "t2") as c:
        await _start(c)
        failed = await c.router.call_tool("c1", "explode", {"reason": "disk on fire"})
        assert failed.status == "error" and "disk on fire" in (failed.error or "")
        bad = await c.router.call_tool("c1", "get_weather", {"city": "Lisbon"})
        assert bad.status == "error" and "location" in (bad.error or "")  # the gateway checked the arguments
        slow = asyncio.create_task(c.router.call_tool("c1", "slow", {"seconds": 5}, turn_id=2))
        await wait_until(
            lambda: any(a.pending_calls for a in c.node.gateway.agents()), 5, "the call to reach the agent"
        )
        started = time.monotonic()
        c.router.cancel_tool_calls("c1", turn_id=2, reason="barge-in")
        outcome = await slow
        assert outcome.status == "cancelled" and time.monotonic() - started < 0.1
        await wait_until(lambda: not any(a.pending_calls for a in c.node.gateway.agents()), 2, "the node to cancel")
        node_slow = [e for e in c.node.events if isinstance(e, ToolCallUpdated) and e.name == "slow"]
        assert node_slow[-1].status == "cancelled" and node_slow[-1].error == "barge-in"
        barged = asyncio.create_task(c.router.call_tool("c1", "slow", {"seconds": 5}))
        await wait_until(
            lambda: any(a.pending_calls for a in c.node.gateway.agents()), 5, "the call to reach the agent"
        )
        barged.cancel()  # the voice loop abandons the call: the node is told by the call's id
        await asyncio.gather(barged, return_exceptions=True)
        await wait_until(lambda: not any(a.pending_calls for a in c.node.gateway.agents()), 2, "the node to cancel")
        worker_slow = [e for e in c.events if isinstance(e, ToolCallUpdated) and e.name == "slow"]
        assert [e.status for e in worker_slow] == ["started", "cancelled", "started", "cancelled"]
        ok = await c.router.call_tool("c1", "echo", {"value": "still here"})
        assert ok.status == "done" and ok.result["value"] == "still here"


async def test_with_no_gateway_node_a_call_fails_at_once(broker_url: str) -> None:
    # No node has ever served this prefix, so the broker answers "no responders" at once. (A node that
    # has just stopped is not tested here: in 3 of 20 runs the call after `service.stop()` still waited
    # for its timeout, cause not found yet: docs/cluster.md, "Known problems".)
    worker_nc = await connect_broker(broker_url, name="worker")
    events: list[Event] = []
    bus = EventBus()
    bus.subscribe(events.append)
    router = RemoteToolRouter(worker_nc, bus, subjects=Subjects("t3"))
    try:
        await router.start()
        started = time.monotonic()
        outcome = await router.call_tool("c1", "get_weather", {"location": "Lisbon"})
        elapsed = time.monotonic() - started
        assert outcome.status == "error" and "no gateway node" in (outcome.error or ""), outcome
        assert elapsed < 0.2, f"took {elapsed:.3f} s: should not wait for the tool's timeout"
        assert [e.status for e in events if isinstance(e, ToolCallUpdated)] == ["started", "error"]
        await router.conversation_started("c2", "test", "acme")
        [error] = [e for e in events if isinstance(e, ErrorOccurred)]
        assert error.conversation_id == "c2" and "no gateway node" in error.message and error.hint
    finally:
        await router.aclose()
        await worker_nc.close()


async def test_a_node_gone_during_a_call_fails_it_at_once(broker_url: str, tmp_path: Path) -> None:
    """The request was delivered, so the broker has no "no responders" to say for it; the worker's probe
    pings the node while the call is pending and hears "no responders" once the node's connection is gone."""
    async with cluster(broker_url, tmp_path, "t5") as c:
        await _start(c)
        call = asyncio.create_task(c.router.call_tool("c1", "slow", {"seconds": 5}))
        await wait_until(
            lambda: any(a.pending_calls for a in c.node.gateway.agents()), 5, "the call to reach the agent"
        )
        started = time.monotonic()
        await c.service._nc.close()  # the node's broker connection gone, as when its process dies
        outcome = await call
        elapsed = time.monotonic() - started
        assert outcome.status == "error" and "gateway node node-1 is gone" in (outcome.error or ""), outcome
        assert elapsed < 1.0, f"{elapsed:.2f} s: the probe (every 0.25 s) should have noticed"
        assert c.router.conversations == {"c1": None}  # released: another node's agent may take it
        assert not c.router.tools_for("c1")


async def test_a_malformed_request_gets_an_error_reply_and_the_service_keeps_serving(
    broker_url: str, tmp_path: Path
) -> None:
    async with cluster(broker_url, tmp_path, "t4") as c:
        await _start(c)
        probe = await connect_broker(broker_url, name="probe")
        try:
            subjects, call = c.subjects, c.subjects.node_call("node-1")
            for subject, payload in [
                (call, b"not json"),
                (call, b"[1, 2]"),
                (call, b'{"conversation_id": "c1", "name": "echo"}'),
                (
                    subjects.node_call("node-1"),
                    b'{"call_id": "x", "conversation_id": 5, "name": "echo", "arguments": {}}',
                ),
                (subjects.tools, b'{"conversation_id": "c1", "wait_s": "soon"}'),
                (subjects.started, b'{"conversation_id": "c9"}'),
                (subjects.ended, b"\xff\xfe"),
            ]:
                reply = json.loads((await probe.request(subject, payload, timeout=2)).data)
                assert reply["ok"] is False and reply["error"], (subject, payload, reply)
            await probe.publish(subjects.node_cancel("node-1"), b"{")  # a malformed message nobody answers
            await probe.publish(subjects.owner, b'{"conversation_id": "c1", "node": 7}')
            await probe.publish(subjects.tools_changed, b'{"conversation_id": "c1"}')  # nor the worker
        finally:
            await probe.close()
        ok = await c.router.call_tool("c1", "echo", {"value": "after"})
        assert ok.status == "done" and ok.result["value"] == "after"
        assert c.router.tools_for("c1")  # the bad snapshot changed nothing


async def test_an_unreachable_broker_is_an_explained_error_at_once() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerError) as refused:
        await connect_broker(url, connect_timeout_s=1.0)
    assert time.monotonic() - started < 1.5
    assert url in refused.value.message and "nats-server" in refused.value.hint


def test_the_single_process_platform_does_not_load_nats() -> None:
    code = (
        "import sys, platform_core.platform, platform_core.gateway, platform_core.cluster\n"
        "import platform_core.cli.main as cli, platform_core.cluster.roles\n"
        "cli.build_parser().parse_args(['serve'])\n"
        "assert 'nats' not in sys.modules, sorted(m for m in sys.modules if m.startswith('nats'))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


async def test_a_worker_gone_silent_has_its_conversations_ended_on_the_node(broker_url: str, tmp_path: Path) -> None:
    async with cluster(broker_url, tmp_path, "t6") as c:
        await _start(c)
        assert any("c1" in a.tools for a in c.node.gateway.agents())
        worker_nc = await connect_broker(broker_url, name="worker presence")
        node_presence = Presence(
            c.service._nc,
            c.subjects,
            lambda: Member("node-1", "gateway", c.node.url(), len(c.service.conversations)),
            ttl_s=1.0,
            every_s=0.2,
            watch="worker",
            on_gone=lambda worker, why: c.service.end_conversations(worker.conversations, why),
        )
        worker_presence = Presence(
            worker_nc, c.subjects, lambda: Member("w1", "worker", "http://w1", 1, 4, ["c1"]), ttl_s=1.0, every_s=0.2
        )
        try:
            await worker_presence.start()
            await node_presence.start()
            await wait_until(lambda: "w1" in {m.id for m in node_presence.members}, 3, "the node to see the worker")
            assert worker_presence._task is not None
            worker_presence._task.cancel()  # the worker dies: no more writes, no delete
            await worker_nc.close()
            died = time.monotonic()
            await wait_until(lambda: "c1" not in c.service.conversations, 5, "the node to end c1")
            await wait_until(lambda: not any("c1" in a.tools for a in c.node.gateway.agents()), 2, "the agent told")
            print(f"a silent worker's conversation ended on the node {time.monotonic() - died:.2f} s after (TTL 1 s)")
            assert c.node.gateway.tools_for("c1") == [] and not c.node.gateway.has_agents("c1")
        finally:
            await node_presence.stop()
            await worker_nc.close()
