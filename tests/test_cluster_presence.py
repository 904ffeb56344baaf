"""Presence in the JetStream key-value bucket and the broker's health (docs/cluster.md), on a real
nats-server: entries expire with their process, a worker hears a gateway node gone, /healthz's broker
state follows the connection through a broker restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from platform_core.cli.cluster import format_status
from platform_core.cluster import connect_broker
from platform_core.cluster.broker import BrokerHealth
from platform_core.cluster.presence import Member, Presence, describe, open_bucket, read_members
from platform_core.cluster.roles import GatewayNode
from platform_core.cluster.subjects import Subjects
from platform_core.config import PlatformConfig
from tests.agents_helpers import ROOT, wait_until
from tests.cluster_helpers import free_port, nats_server


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


async def test_entries_expire_with_their_process_and_a_worker_hears_a_node_gone(broker_url: str) -> None:
    subjects = Subjects("p1")
    clients = [await connect_broker(broker_url, name=n) for n in ("gw-a", "gw-b", "worker")]
    gone: list[tuple[str, str, float]] = []
    a = Presence(clients[0], subjects, lambda: Member("gw-a", "gateway", "ws://a", 2), ttl_s=1.0, every_s=0.2)
    b = Presence(clients[1], subjects, lambda: Member("gw-b", "gateway", "ws://b", 0), ttl_s=1.0, every_s=0.2)
    w = Presence(
        clients[2],
        subjects,
        lambda: Member("w1", "worker", "http://w", 1, 4, ["conv_1"]),
        ttl_s=1.0,
        every_s=0.2,
        watch="gateway",
        on_gone=lambda node, why: gone.append((node.id, why, time.monotonic())),
    )
    try:
        for p in (a, b, w):
            await p.start()
        await wait_until(lambda: {m.id for m in w.members} == {"gw-a", "gw-b", "w1"}, 3, "every entry")
        [worker] = [m for m in w.members if m.id == "w1"]
        assert (worker.active, worker.capacity, worker.conversations) == (1, 4, ["conv_1"])

        stopped = time.monotonic()
        await b.stop()  # a clean stop deletes the entry: heard within one round
        await wait_until(lambda: [g[0] for g in gone] == ["gw-b"], 2, "gw-b gone")
        assert gone[0][2] - stopped < 0.5

        died = time.monotonic()
        assert a._task is not None
        a._task.cancel()  # as if the process died: it writes no more and deletes nothing
        await clients[0].close()
        await wait_until(lambda: [g[0] for g in gone] == ["gw-b", "gw-a"], 5, "gw-a's entry to expire")
        expired_after = gone[1][2] - died
        print(f"a silent node's entry (TTL 1 s, rounds of 0.2 s) was heard gone {expired_after:.2f} s after")
        assert 0.5 < expired_after < 2.5, f"{expired_after:.2f} s for a 1 s TTL"
        assert "no refresh for 1 s" in gone[1][1]
        rows = describe(await read_members(await open_bucket(clients[2], subjects)))
        assert [r["id"] for r in rows] == ["w1"]
        text = format_status(broker_url, rows)
        assert "w1" in text and "worker" in text and "1/4" in text and "conversation conv_1" in text
    finally:
        await w.stop()
        for client in clients:
            await client.close()


async def test_the_broker_health_follows_a_restart(tmp_path: Path) -> None:
    with nats_server(tmp_path / "first") as url:
        health = BrokerHealth(url)
        nc = await connect_broker(url, name="health", health=health, reconnect_wait_s=0.2)
        assert health.to_json()["ok"] and health.state == "connected"
    try:
        await wait_until(lambda: health.state == "reconnecting", 5, "the loss to be noticed")
        await asyncio.sleep(0.5)
        report = health.to_json()
        assert not report["ok"] and url in str(report["reason"]) and "reconnecting" in str(report["reason"])
        port = int(url.rsplit(":", 1)[1])
        with nats_server(tmp_path / "second", port=port):
            await wait_until(lambda: health.state == "connected", 10, "the reconnection")
            assert health.reconnects == 1 and health.to_json()["reason"] == ""
    finally:
        await nc.close()
    assert health.state == "closed"


async def test_a_gateway_nodes_healthz_says_degraded_while_its_broker_is_away(tmp_path: Path) -> None:
    config = PlatformConfig()
    config.server.port, config.server.api_key = 0, "key-acme-0123456789abcdef"
    with nats_server(tmp_path / "first") as url:
        node = GatewayNode(config, url, node_id="gw-health")
        await node.start()
        try:
            status, body = await asyncio.to_thread(_get, f"{node.url}/healthz")
            assert (status, body) == (200, "ok\n")
            members = await read_members(await open_bucket(node._nc, Subjects()))  # type: ignore[arg-type]
            assert [(m.id, m.role, m.url) for m in members] == [("gw-health", "gateway", node.gateway_url)]
            port = int(url.rsplit(":", 1)[1])
        except BaseException:
            await node.stop()
            raise
    try:
        await wait_until(lambda: node.broker.state == "reconnecting", 5, "the loss to be noticed")
        status, body = await asyncio.to_thread(_get, f"{node.url}/healthz")
        assert status == 503 and body.startswith("degraded: message broker") and "reconnecting" in body, body
        with nats_server(tmp_path / "second", port=port):
            await wait_until(lambda: node.broker.state == "connected", 10, "the reconnection")
            status, body = await asyncio.to_thread(_get, f"{node.url}/healthz")
            assert (status, body) == (200, "ok\n")
            await asyncio.sleep(1.5)  # a presence round: the bucket (in memory, lost with the broker) is back
            members = await read_members(await open_bucket(node._nc, Subjects()))  # type: ignore[arg-type]
            assert [m.id for m in members] == ["gw-health"]
    finally:
        await node.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_as_a_gateway_node_with_no_broker_exits_with_what_to_do() -> None:
    broker = f"nats://127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "platform_core.cli.main", "serve", "--role", "gateway", "--port", "0"]
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--broker", broker, "--api-key", "key-acme-0123456789abcdef"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert f"cannot reach the message broker at {broker}" in done.stderr and "nats-server" in done.stderr
    assert time.monotonic() - started < 20
