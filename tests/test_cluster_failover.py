"""A gateway node killed under its agent (docs/cluster.md, "What each failure does"): a real nats-server,
two `serve --role gateway` processes, the worker's `RemoteToolRouter` in this process and one agent_sdk
agent process given both nodes' URLs. A call is served through node A; `kill -9` of A; the agent
reconnects to node B and registers again, and the next call is served through B. No engines."""

from __future__ import annotations

import time
from pathlib import Path

from bench.harness import RunningPlatform, start_platform, stop_platform
from platform_core.bus import EventBus
from platform_core.cluster import RemoteToolRouter, Subjects, connect_broker
from tests.agents_helpers import spawn_agent, stop, wait_until, write_agent
from tests.cluster_helpers import nats_server


def _gateway_node(tmp: Path, broker: str, node_id: str) -> RunningPlatform:
    directory = tmp / node_id
    directory.mkdir()
    return start_platform(directory, "--role", "gateway", "--broker", broker, "--node-id", node_id, timeout=60)


async def test_kill_9_of_the_gateway_node_moves_its_agent_to_the_other_node(tmp_path: Path) -> None:
    with nats_server(tmp_path / "nats") as broker:
        a = _gateway_node(tmp_path, broker, "gw-a")
        b = _gateway_node(tmp_path, broker, "gw-b")
        nc = await connect_broker(broker, name="worker")
        called: list[str] = []  # the node each call request was addressed to, as the broker carries it

        async def on_call(msg: object) -> None:
            called.append(msg.subject.split(".")[2])  # type: ignore[attr-defined]

        await nc.subscribe(Subjects().node_call("*"), cb=on_call)
        router = RemoteToolRouter(nc, EventBus())
        await router.start()
        agent = spawn_agent(write_agent(tmp_path), f"{a.gateway_url},{b.gateway_url}", a.api_key, "--log-level", "INFO")
        try:
            await router.conversation_started("c1", None, "default")
            assert await router.wait_for_tools("c1", 15), "the agent registered its tools on node A"
            assert router.conversations["c1"] == "gw-a"
            first = await router.call_tool("c1", "echo", {"value": "one"})
            assert first.status == "done" and first.result["value"] == "one", first
            assert called == ["gw-a"]

            a.process.kill()  # SIGKILL: no goodbye to the agent, the broker or the worker
            killed = time.monotonic()
            await wait_until(lambda: router.conversations.get("c1") == "gw-b", 10, "node B owning the conversation")
            owned_s = time.monotonic() - killed
            second = await router.call_tool("c1", "echo", {"value": "two"})
            served_s = time.monotonic() - killed
            print(f"kill -9 of gw-a -> gw-b owns c1 {owned_s * 1000:.0f} ms, next call served {served_s * 1000:.0f} ms")
            assert second.status == "done" and second.result["value"] == "two", second
            assert second.result["conversation"] == "c1"
            assert called == ["gw-a", "gw-b"]
            assert served_s < 5, "one backoff delay (0.5 s) and a ping, not a presence TTL"
        finally:
            await router.aclose()
            await stop(agent)
            stop_platform(b.process)
            stop_platform(a.process)
            await nc.close()
        log = agent.stderr.read().decode() if agent.stderr else ""
        assert f"connected to the platform at {a.gateway_url}" in log, log
        assert f"connected to the platform at {b.gateway_url}" in log, log
        assert "auth_token" not in log, "the key is never logged"
