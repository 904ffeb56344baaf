"""The cluster roles as separate processes (docs/cluster.md): a real nats-server, `serve --role gateway`,
`serve --role worker` with the real engines (whisper, llama, piper), an agent_sdk agent in its own process
connected to the gateway node, and calls placed on the worker over WebRTC. Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import RunningPlatform, start_platform, stop_platform
from platform_core.calls import place_call
from platform_core.cluster import Subjects, connect_broker
from platform_core.cluster.presence import open_bucket, read_members
from platform_core.events import Event, ToolCallUpdated
from tests.agents_helpers import spawn_agent, stop, wait_until, write_agent
from tests.cluster_helpers import cluster_status, free_port, health, nats_server
from tests.speech import speech_wav, words

pytestmark = pytest.mark.slow

AGENT = """
import asyncio
import os
from pathlib import Path

from agent_sdk import Agent, tool

FLAG = Path({flag!r})  # when it exists, the tool hangs (the test kills the gateway node meanwhile)


class WeatherAgent(Agent):
    agent_id = "tools"

    @tool
    async def get_weather(self, location: str) -> dict:
        \"\"\"Get the current weather for a location.\"\"\"
        if FLAG.exists():
            FLAG.with_suffix(".started").write_text(location)
            await asyncio.sleep(120)
        return {{"location": location, "temperature_c": 17, "condition": "foggy", "agent_pid": os.getpid()}}
"""


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture(scope="module")
def gateway(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    started = time.monotonic()
    running = start_platform(
        tmp_path_factory.mktemp("gateway"), "--role", "gateway", "--broker", broker, "--node-id", "gw1", timeout=60
    )
    ready_s = time.monotonic() - started
    print(f"gateway node ready in {ready_s:.2f} s, RSS {rss_mb(running.process.pid):.0f} MB")
    assert ready_s < 20, "no engines to load: it starts as fast as Python imports"
    yield running
    stop_platform(running.process)


@pytest.fixture(scope="module")
def worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    started = time.monotonic()
    running = start_platform(
        tmp_path_factory.mktemp("worker"), "--role", "worker", "--broker", broker, "--node-id", "w1"
    )
    print(f"media worker ready in {time.monotonic() - started:.2f} s, RSS {rss_mb(running.process.pid):.0f} MB")
    yield running
    stop_platform(running.process)


def test_the_gateway_role_starts_without_engines_and_reports_its_broker(gateway: RunningPlatform, broker: str) -> None:
    report = health(gateway.url)
    assert report["status"] == "ok" and report["role"] == "gateway" and report["node"] == "gw1", report
    assert report["cluster"]["state"] == "connected" and "engines" not in report
    maps = Path(f"/proc/{gateway.process.pid}/maps").read_text().lower()
    loaded = [lib for lib in ("llama", "whisper", "onnxruntime", "piper") if lib in maps]
    assert loaded == [], f"a gateway node loads no engine, found {loaded}"
    assert rss_mb(gateway.process.pid) < 200
    [entry] = [e for e in cluster_status(broker) if e["id"] == "gw1"]
    assert entry["role"] == "gateway" and entry["url"] == gateway.gateway_url and entry["pid"] == gateway.process.pid


async def test_a_spoken_call_on_the_worker_is_answered_with_the_tool_result_from_the_gateway_nodes_agent(
    gateway: RunningPlatform, worker: RunningPlatform, broker: str, tmp_path: Path
) -> None:
    flag = tmp_path / "hang"
    agent = spawn_agent(
        write_agent(tmp_path, textwrap.dedent(AGENT.format(flag=str(flag)))), gateway.gateway_url, gateway.api_key
    )
    try:
        await wait_until(lambda: health(gateway.url)["agents"] >= 1, 20, "the agent to connect to the gateway node")
        status = await asyncio.to_thread(http_status, f"{worker.url}/customer_sdk/websocket")
        assert status == 503  # the worker's own agent endpoint refuses agents, pointing to a gateway node
        wav = speech_wav(tmp_path, "What's the weather in San Francisco?")
        report = await place_call(worker.url, "tools", input_wav=wav, api_key=worker.api_key)
        [turn] = report["turns"]
        [weather] = turn["tool_calls"]
        assert weather["name"] == "get_weather" and weather["status"] == "done", turn
        assert weather["result"]["agent_pid"] == agent.pid  # ran in the agent process, behind the gateway node
        assert words(turn["agent_text"]) & {"17", "seventeen", "foggy", "fog"}, turn["agent_text"]
        members = {e["id"]: e for e in cluster_status(broker)}
        assert members["w1"]["role"] == "worker" and members["w1"]["capacity"] >= 1, members
        assert health(worker.url)["cluster"]["state"] == "connected"

        # kill -9 of the gateway node while the agent holds the call: the worker fails it at once.
        flag.write_text("hang")
        ended: list[float] = []

        def on_event(event: Event) -> None:
            if isinstance(event, ToolCallUpdated) and event.status != "started":
                ended.append(time.monotonic())

        call = asyncio.ensure_future(
            place_call(
                worker.url,
                "tools",
                text="What's the weather in Lisbon?",
                api_key=worker.api_key,
                on_event=on_event,
                max_duration_s=90,
            )
        )
        started_file = flag.with_suffix(".started")
        await wait_until(started_file.exists, 60, "the tool call to reach the agent")
        killed_at = time.monotonic()
        os.kill(gateway.process.pid, signal.SIGKILL)
        report = await call
        [turn] = report["turns"]
        [weather] = turn["tool_calls"]
        assert weather["status"] == "error" and "gateway node gw1 is gone" in weather["error"], weather
        failed_after = ended[0] - killed_at
        print(f"kill -9 of the gateway node -> the worker's call failed after {failed_after * 1000:.0f} ms")
        assert failed_after < 1.5, f"{failed_after:.2f} s: should not wait for the tool's timeout"
        assert turn["agent_text"], turn  # the caller still gets an answer (the failure, not silence)
        nc = await connect_broker(broker, name="test")
        try:
            bucket = await open_bucket(nc, Subjects())
            while "gw1" in {m.id for m in await read_members(bucket)}:
                assert time.monotonic() - killed_at < 10, "the dead node's presence never expired"
                await asyncio.sleep(0.05)
        finally:
            await nc.close()
        print(f"its presence entry expired {time.monotonic() - killed_at:.2f} s after the kill (TTL 3 s)")
        assert "gw1" not in {e["id"] for e in cluster_status(broker)}
    finally:
        await stop(agent)


async def test_a_workers_healthz_follows_its_broker_and_calls_are_answered_while_it_is_away(tmp_path: Path) -> None:
    port = free_port()
    with contextlib.ExitStack() as first:
        url = first.enter_context(nats_server(tmp_path / "first", port))
        (tmp_path / "worker").mkdir()
        running = start_platform(tmp_path / "worker", "--role", "worker", "--broker", url, "--node-id", "w2")
    try:
        # the broker stopped as the worker became ready: /healthz says so, with the reason
        await wait_until(lambda: health(running.url)["status"] == "degraded", 5, "the worker to report its broker")
        report = health(running.url)
        assert report["cluster"]["state"] == "reconnecting" and url in report["reason"], report
        assert report["engines"]["llm"]["state"] == "ok"  # the engines are fine: only the broker is away
        answered = await place_call(running.url, text="What is two plus two?", api_key=running.api_key)
        [turn] = answered["turns"]
        assert turn["agent_text"] and turn["tool_calls"] == [], turn  # a plain answer, no agent to ask
        [told] = [e for e in answered["errors"] if e["where"] == "cluster"]  # the caller hears why: no agents
        assert "unreachable" in told["message"] and told["hint"], told
        with nats_server(tmp_path / "second", port):
            await wait_until(lambda: health(running.url)["status"] == "ok", 10, "the worker to reconnect")
            assert health(running.url)["cluster"]["reconnects"] == 1
    finally:
        stop_platform(running.process)
