"""The broker's load as conversations grow, past what WebRTC on this machine carries (bench/cluster_scale.py).

Media and signalling never touch NATS: a conversation reaches the broker only through its tool calls, its
start and end (`conversation.started`/`ended`, `tools.changed`) and presence. So these conversations are
started by a `RemoteToolRouter` in the bench process (the media worker's own router, its code path over
NATS) without any WebRTC call, and each calls the agent's echo tool at the ramp's turn rate through the
real gateway node process and agent process. Per step: the broker's (and every process's) CPU, and the
round trip. The last step repeats the largest count at a faster rate (`--stress-every`), which gives the
broker's CPU per tool call with a resolution the slow rate cannot.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.cluster_load import percentiles
from bench.cluster_procs import Cluster
from platform_core.bus import EventBus
from platform_core.cluster import RemoteToolRouter, connect_broker

CUSTOMER = "default"  # the customer id of the bench's one API key (cluster_procs.KEY)


async def _start(router: RemoteToolRouter, conversations: list[str], target: int) -> None:
    while len(conversations) < target:
        batch = [f"nats-only-{i}" for i in range(len(conversations), min(target, len(conversations) + 25))]
        await asyncio.gather(*(router.conversation_started(c, "echo", CUSTOMER) for c in batch))
        tools = await asyncio.gather(*(router.wait_for_tools(c, 30) for c in batch))
        if not all(tools):
            raise RuntimeError("the echo agent registered no tools for some conversations within 30 s")
        conversations += batch


async def _talk(router: RemoteToolRouter, conversations: list[str], window_s: float, every_s: float) -> dict[str, Any]:
    samples: list[float] = []
    failures: list[str] = []
    started = time.monotonic()

    async def one(i: int, conversation: str) -> None:
        await asyncio.sleep(every_s * i / max(1, len(conversations)))
        while time.monotonic() - started < window_s:
            t = time.perf_counter()
            outcome = await router.call_tool(conversation, "echo", {"value": str(i)})
            if outcome.status == "done":
                samples.append(time.perf_counter() - t)
            else:
                failures.append(f"{outcome.status}: {outcome.error}")
            await asyncio.sleep(every_s)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(conversations)))
    return {
        "tool_calls": len(samples),
        "failures": len(failures),
        "round_trip_ms": percentiles([s * 1000 for s in samples]),
    }


async def broker_load(
    cluster: Cluster, steps: list[int], window_s: float, every_s: float, stress_every_s: float
) -> list[dict[str, Any]]:
    """One row per step (conversations, rate, calls, round trip, CPU % and seconds per process)."""
    nc = await connect_broker(cluster.broker_url, name="bench conversations without media")
    router = RemoteToolRouter(nc, EventBus())
    await router.start()
    conversations: list[str] = []
    rows: list[dict[str, Any]] = []
    plan = [(n, every_s) for n in steps] + ([(max(steps), stress_every_s)] if stress_every_s else [])
    try:
        for target, every in plan:
            await _start(router, conversations, target)
            before, wall = cluster.cpu(), time.monotonic()
            if conversations:
                calls = await _talk(router, conversations, window_s, every)
            else:
                await asyncio.sleep(window_s)
                calls = {"tool_calls": 0, "failures": 0, "round_trip_ms": percentiles([])}
            after, wall = cluster.cpu(), time.monotonic() - wall
            rows.append(
                {
                    "conversations": len(conversations),
                    "call_every_s": every,
                    "window_s": round(wall, 2),
                    **calls,
                    "calls_per_s": round(calls["tool_calls"] / wall, 1),
                    "cpu_seconds": {k: round(after[k] - before[k], 3) for k in after},
                    "cpu_percent": {k: round(100 * (after[k] - before[k]) / wall, 2) for k in after},
                }
            )
            print(_row_text(rows[-1]), flush=True)
    finally:
        await asyncio.gather(*(router.conversation_ended(c) for c in conversations), return_exceptions=True)
        await router.aclose()
        await nc.close()
    return rows


BROKER_HEADER = "conversations  call every  calls/s  rt p50/p99 ms   fail   CPU %: broker gateway agent bench"


def _row_text(row: dict[str, Any]) -> str:
    rt, cpu = row["round_trip_ms"], row["cpu_percent"]
    return (
        f"{row['conversations']:>13}  {row['call_every_s']:>8g} s  {row['calls_per_s']:>7}"
        f"  {rt['p50'] or '-':>6}/{rt['p99'] or '-':<8}{row['failures']:>5}"
        f"   {cpu['broker']:>13} {cpu['gateway']:>7} {cpu['agent']:>5} {cpu['callers']:>5}"
    )


def broker_us_per_call(rows: list[dict[str, Any]]) -> float | None:
    """The broker's CPU microseconds per tool call above idle, from the busiest row against the idle one."""
    idle = next((r for r in rows if r["conversations"] == 0), None)
    busy = max(rows, key=lambda r: r["tool_calls"], default=None)
    if idle is None or busy is None or not busy["tool_calls"]:
        return None
    idle_rate = idle["cpu_seconds"]["broker"] / idle["window_s"]
    above = busy["cpu_seconds"]["broker"] - idle_rate * busy["window_s"]
    return max(above, 0.0) / busy["tool_calls"] * 1e6
