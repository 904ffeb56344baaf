"""Many agents, sustained call rate: no lost, duplicated or misrouted result; where does it degrade?

    .venv/bin/python -m bench.agents_load [--agents 100] [--rate 1000] [--seconds 30]
    .venv/bin/python -m bench.agents_load --ramp        # 5 s steps of +500 calls/s until it degrades

The gateway runs in this process. `--agents` agent_sdk agents (one websocket each, spread over
`--processes` subprocesses) each serve their own conversation; calls go out open-loop at `--rate` per
second to random conversations. Every result names the call, the conversation and the agent that ran
it, so a lost, duplicated or misrouted result is counted, never assumed away.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from platform_core.bus import EventBus
from platform_core.gateway import AgentGateway, serve_gateway
from platform_core.protocol import GATEWAY_PATH

ROOT = Path(__file__).resolve().parents[1]
KEY = "load-key"


# --- agent side (runs in the subprocesses) -----------------------------------------------------------------


async def serve_agents(url: str, first: int, count: int) -> None:
    from agent_sdk import Agent, tool

    class LoadAgent(Agent):
        def __init__(self, index: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.index = index

        @tool
        async def work(self, call_no: int) -> dict[str, object]:
            """Answer with who ran which call for which conversation."""
            return {"call_no": call_no, "conversation": self.conversation_id, "agent": self.index}

    agents = [LoadAgent(i, api_key=KEY, platform_url=url) for i in range(first, first + count)]
    await asyncio.gather(*(a.start(conversation_id=f"load-{a.index}") for a in agents))
    await asyncio.Event().wait()


# --- platform side ------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def drive(gateway: AgentGateway, agents: int, rate: int, seconds: float) -> dict[str, Any]:
    """Open-loop load: `rate` calls per second for `seconds`, then wait for every answer."""
    latencies: list[float] = []
    status: Counter[str] = Counter()
    seen: Counter[int] = Counter()
    rng = random.Random(7)
    tasks: set[asyncio.Task[None]] = set()

    async def one(call_no: int) -> None:
        index = rng.randrange(agents)
        conversation = f"load-{index}"
        started = time.perf_counter()
        outcome = await gateway.call_tool(conversation, "work", {"call_no": call_no})
        latencies.append(time.perf_counter() - started)
        if outcome.status != "done":
            status[outcome.status] += 1
            return
        seen[outcome.result["call_no"]] += 1
        expected = {"call_no": call_no, "conversation": conversation, "agent": index}
        status["done" if outcome.result == expected else "misrouted"] += 1

    call_no = 0
    begin = time.perf_counter()
    while (now := time.perf_counter()) - begin < seconds:
        while call_no < rate * (now - begin):  # catch up by elapsed time, whatever the loop's lag
            call_no += 1
            task = asyncio.create_task(one(call_no))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(0.005)
    sent_for = time.perf_counter() - begin
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "target_rate": rate,
        "sent": call_no,
        "achieved_rate": round(call_no / sent_for),
        "done": status["done"],
        "errors": status["error"],
        "timeouts": status["timeout"],
        "misrouted": status["misrouted"],
        "duplicated": sum(n - 1 for n in seen.values() if n > 1),
        "lost": call_no - sum(status.values()),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
    }


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def degraded(r: dict[str, Any]) -> bool:
    bad = r["errors"] + r["timeouts"] + r["misrouted"] + r["duplicated"] + r["lost"]
    return bool(bad) or r["achieved_rate"] < 0.95 * r["target_rate"] or r["p99_ms"] > 100


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    gateway = AgentGateway(EventBus(), {KEY: "load"})
    server = await serve_gateway(gateway, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}{GATEWAY_PATH}"
    for i in range(args.agents):
        await gateway.conversation_started(f"load-{i}", None, "load")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    share = -(-args.agents // args.processes)
    processes = await asyncio.to_thread(
        lambda: [  # fork and exec off the loop
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.agents_load",
                    "--serve-agents",
                    url,
                    str(first),
                    str(min(share, args.agents - first)),
                ],
                env=env,
                stderr=subprocess.PIPE,
            )
            for first in range(0, args.agents, share)
        ]
    )
    results: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while sum(1 for a in gateway.agents() if a.tools) < args.agents:
            if time.monotonic() > deadline:
                raise RuntimeError("the agents did not all register within 60 s")
            await asyncio.sleep(0.1)
        await drive(gateway, args.agents, 200, 1.0)  # warm up
        rates = range(args.rate, 100_000, args.step) if args.ramp else [args.rate]
        me, children = psutil.Process(), [psutil.Process(p.pid) for p in processes]
        for rate in rates:
            cpu_before = _cpu(me), sum(_cpu(c) for c in children)
            result = await drive(gateway, args.agents, rate, args.step_seconds if args.ramp else args.seconds)
            cpu_after = _cpu(me), sum(_cpu(c) for c in children)
            calls = max(1, result["sent"])
            result["platform_cpu_us_per_call"] = round((cpu_after[0] - cpu_before[0]) / calls * 1e6)
            result["agents_cpu_us_per_call"] = round((cpu_after[1] - cpu_before[1]) / calls * 1e6)
            result["load_average"] = os.getloadavg()[0]
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.ramp and degraded(result):
                break
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            await asyncio.to_thread(p.wait, 10)
        await gateway.aclose()
        server.close()
        await server.wait_closed()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1000, help="calls per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ramp", action="store_true", help="raise the rate until it degrades")
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--out", default="bench/results/agents_load.json")
    parser.add_argument("--serve-agents", nargs=3, metavar=("URL", "FIRST", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_agents:
        url, first, count = args.serve_agents
        asyncio.run(serve_agents(url, int(first), int(count)))
        return 0
    results = asyncio.run(run(args))
    print(
        f"\n{args.agents} agents; 'degraded' = any lost/duplicated/misrouted/failed result, "
        "achieved rate < 95 % of target, or p99 > 100 ms"
    )
    print(
        f"{'target/s':>9}{'sent/s':>8}{'done':>8}{'lost':>6}{'dup':>5}{'misrt':>6}{'err':>5}{'tmo':>5}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'cpu us/call platform+agents':>29}{'load':>6}  verdict"
    )
    for r in results:
        print(
            f"{r['target_rate']:>9}{r['achieved_rate']:>8}{r['done']:>8}{r['lost']:>6}{r['duplicated']:>5}"
            f"{r['misrouted']:>6}{r['errors']:>5}{r['timeouts']:>5}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['max_ms']:>9.1f}{r['platform_cpu_us_per_call']:>18} + {r['agents_cpu_us_per_call']:<8}"
            f"{r['load_average']:>6.1f}  {'DEGRADED' if degraded(r) else 'ok'}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"agents": args.agents, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
