"""Tool-call round trip platform -> agent -> platform on loopback: agent_sdk and conversimple-sdk side by side.

    .venv/bin/python -m bench.tool_roundtrip [--calls 10000] [--out bench/results/tool_roundtrip.json]

The gateway runs in this process; each agent runs in its own subprocess (conversimple-sdk 0.2.4 in its
own venv, created on first use). The tool is an async echo. Calls are sequential: the figure is the
latency of one call, not throughput. Target for agent_sdk: p50 <= 1 ms, p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from platform_core.bus import EventBus
from platform_core.gateway import AgentGateway, serve_gateway
from platform_core.pipeline.tools import ToolRouter
from platform_core.protocol import GATEWAY_PATH

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"

OURS = textwrap.dedent('''
    from agent_sdk import Agent, tool

    class EchoAgent(Agent):
        agent_id = "echo"

        @tool
        async def echo(self, value: str) -> dict:
            """Echo the value."""
            return {"value": value}
''')

THEIRS = textwrap.dedent("""
    import asyncio, sys
    from conversimple import ConversimpleAgent, tool_async

    class EchoAgent(ConversimpleAgent):
        agent_id = "echo"

        @tool_async("Echo the value")
        async def echo(self, value: str) -> dict:
            return {"value": value}

    async def main():
        agent = EchoAgent(api_key=sys.argv[2], platform_url=sys.argv[1])
        await agent.start()
        await asyncio.Event().wait()

    asyncio.run(main())
""")


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "calls": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": ms[-1],
        "mean_ms": sum(ms) / len(ms),
    }


async def measure(
    gateway: ToolRouter, conversation: str, calls: int, warmup: int = 300, *, customer: str = "bench"
) -> dict[str, Any]:
    """`calls` sequential echo calls after `warmup` (any router: in-process, or through NATS), in a
    conversation of `customer` (the customer id of the echo agent's key)."""
    await gateway.conversation_started(conversation, "echo", customer)
    if not await gateway.wait_for_tools(conversation, 30):
        raise RuntimeError(f"no agent registered tools for {conversation} within 30 s")
    samples: list[float] = []
    failures = 0
    for i in range(warmup + calls):
        started = time.perf_counter()
        outcome = await gateway.call_tool(conversation, "echo", {"value": str(i)})
        elapsed = time.perf_counter() - started
        if outcome.status != "done" or outcome.result != {"value": str(i)}:
            failures += 1
        elif i >= warmup:
            samples.append(elapsed)
    await gateway.conversation_ended(conversation)
    return {**summary(samples), "failures": failures}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    bus = EventBus()
    gateway = AgentGateway(bus, {KEY: "bench"})
    server = await serve_gateway(gateway, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}{GATEWAY_PATH}"
    results: dict[str, Any] = {}
    env = {**os.environ, "CONVERSIMPLE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "echo_agent.py").write_text(OURS)
        (Path(tmp) / "their_agent.py").write_text(THEIRS)
        contenders: dict[str, list[str]] = {
            "agent_sdk": [
                sys.executable,
                "-m",
                "agent_sdk.cli",
                "run",
                str(Path(tmp) / "echo_agent.py"),
                "--url",
                url,
                "--api-key",
                KEY,
                "--log-level",
                "WARNING",
            ],
        }
        if not args.skip_conversimple:
            from bench.harness import compat_venv

            contenders["conversimple-sdk 0.2.4"] = [
                str(compat_venv() / "bin" / "python"),
                str(Path(tmp) / "their_agent.py"),
                url,
                KEY,
            ]
        for name, command in contenders.items():
            process = await asyncio.to_thread(
                subprocess.Popen, command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                deadline = time.monotonic() + 30
                while not any(a.joined for a in gateway.agents()):
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"{name} agent did not connect")
                    await asyncio.sleep(0.05)
                results[name] = await measure(gateway, f"bench-{len(results)}", args.calls)
            finally:
                process.terminate()
                await asyncio.to_thread(process.wait, 10)
                while gateway.agents():  # noqa: ASYNC110 (its AgentDisconnected may have come already)
                    await asyncio.sleep(0.05)
    await gateway.aclose()
    server.close()
    await server.wait_closed()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--skip-conversimple", action="store_true", help="measure agent_sdk only")
    parser.add_argument("--out", default="bench/results/tool_roundtrip.json")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    print(f"tool-call round trip on loopback, {args.calls:,} sequential calls each (ms)")
    print(f"{'agent':<24}{'p50':>8}{'p90':>8}{'p99':>8}{'max':>9}{'mean':>8}{'failures':>10}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['p50_ms']:>8.3f}{r['p90_ms']:>8.3f}{r['p99_ms']:>8.3f}{r['max_ms']:>9.2f}"
            f"{r['mean_ms']:>8.3f}{r['failures']:>10}"
        )
    ours = results.get("agent_sdk", {})
    ok = ours.get("p50_ms", 99) <= 1.0 and ours.get("p99_ms", 99) <= 5.0 and not ours.get("failures")
    print(f"target agent_sdk p50 <= 1 ms, p99 <= 5 ms: {'met' if ok else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"calls": args.calls, "results": results, "target_met": ok}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
