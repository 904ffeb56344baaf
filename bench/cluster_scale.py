"""The cluster at scale (issue 15, docs/cluster.md): 4 media workers behind a front door, up to 200 conversations.

    .venv/bin/python -m bench.cluster_scale [--conversations 200] [--workers 4] [--steps 0,50,100,200]
        [--window 20] [--turn-every 5] [--real] [--out bench/results/cluster_scale.json]

*** THE ENGINES ARE STAND-INS (bench/standin_engines.py) in the first part: no whisper, no LLM, no Piper. ***
It measures the cluster's own costs (WebRTC, the voice loop, signalling through the front door, NATS, the
gateway node, the agent), not the engines'. Processes on this machine (loopback): a real nats-server
(JetStream), the front door, `--workers` media workers (`serve --role worker` with the stand-ins), one
gateway node and one agent_sdk echo agent. The callers (real WebRTC clients, `CallClient`) run in this
process, on the same 2 cores: their CPU is reported apart ("callers") and is not the cluster's.

1. Tool-call round trip, sequential, idle cluster: the in-process gateway and NATS within one process
   (bench/cluster_roundtrip.py), then a `RemoteToolRouter` here -> NATS -> the gateway node process ->
   the agent process and back (the worker's code path, across processes).
2. Call set-up, idle cluster: connect + offer/answer (`answer`) and until the worker's first audio frame
   (`media`), through the front door and straight to worker w1, alternately.
3. Ramp (WebRTC): conversations are added through the front door up to each step (`--steps`, capped at
   `--conversations`); at each step every conversation types "echo wN" every `--turn-every` s (staggered)
   for `--window` s: the stand-in LLM calls the agent's echo tool, so each turn is one tool call
   worker -> NATS -> gateway -> agent. Per step: the tool calls' round trips as the workers measured them
   (p50/p99), turns answered, media frames delivered (1.0: every 20 ms frame), set-up times of the calls
   added, and every process's CPU % (from /proc/PID/stat) and RSS. A step is carried when every call
   was placed, none ended, every turn was answered with its tool call done, and every caller received at
   least 90 % of the media frames; the ramp stops at the first step that is not, saying why.

4. The broker past what WebRTC carries here: the same conversations' NATS traffic without media, from a
   `RemoteToolRouter` in this process, 0 to `--conversations` (bench/cluster_broker_load.py), and the
   largest count once more with a call every `--stress-every` s: the broker's CPU per tool call.

Typed turns, not speech: speech would need whisper (not a stand-in's job) and a WAV per caller played in
real time; the caller's audio still flows (silence, 50 frames/s each way), so WebRTC costs what it costs.

`--real` then runs the real default engines (`serve --role worker`): 1 worker, then 2 workers, behind the
front door, and counts how many concurrent typed callers are all answered (bench/concurrency.py's round).
On this one 2-core machine the 2 workers share the same 2 cores (and each has its own llama.cpp).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import cluster_roundtrip
from bench.cluster_broker_load import BROKER_HEADER, broker_load
from bench.cluster_load import Caller, converse, hang_up_all, percentiles, place, place_many
from bench.cluster_plan import plan_text, real_part
from bench.cluster_procs import Cluster, health, start_cluster
from bench.harness import save_result
from bench.tool_roundtrip import measure
from platform_core.bus import EventBus
from platform_core.cluster import RemoteToolRouter, connect_broker

STANDIN_BANNER = (
    "*** STAND-IN ENGINES: whisper, the LLM and Piper are replaced by a fast stand-in "
    "(bench/standin_engines.py): these figures are the cluster's own costs, not the engines' ***"
)


async def tool_round_trips(cluster: Cluster, calls: int) -> dict[str, Any]:
    """Sequential echo calls: in one process (in-process gateway; NATS) and across the cluster's processes."""
    results: dict[str, Any] = await cluster_roundtrip.run(calls)
    nc = await connect_broker(cluster.broker_url, name="bench probe")
    router = RemoteToolRouter(nc, EventBus())
    await router.start()
    try:
        results["NATS -> gateway node process"] = await measure(router, "bench-probe", calls, 20, customer="default")
    finally:
        await router.aclose()
        await nc.close()
    return results


async def setup_times(cluster: Cluster, calls: int) -> dict[str, Any]:
    """`calls` set-ups each way, one at a time, alternately: through the front door, straight to w1."""
    targets = {"front door": cluster.front.url, "direct to w1": cluster.worker_url("w1")}
    measured: dict[str, list[Caller]] = {name: [] for name in targets}
    for _ in range(calls):
        for name, url in targets.items():
            caller = await place(url, cluster.api_key)
            measured[name].append(caller)
            await caller.client.hangup()
    await asyncio.sleep(1.5)  # the workers' presence shows the calls gone before the next are placed
    return {
        name: {
            "answer_ms": percentiles([c.answer_s * 1000 for c in callers]),
            "media_ms": percentiles([c.media_s * 1000 for c in callers]),
        }
        for name, callers in measured.items()
    }


def _cpu_percent(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    return {name: round(100 * (after[name] - before[name]) / wall_s, 1) for name in after}


def _problems(row: dict[str, Any], failures: list[str]) -> list[str]:
    window = row["window"]
    problems = [f"{n} call(s) not placed: {why}" for why, n in Counter(failures).most_common(3)]
    if window["calls_ended"]:
        problems.append(f"{window['calls_ended']} call(s) ended during the window")
    if window["turns_answered"] < window["turns_sent"]:
        problems.append(f"{window['turns_sent'] - window['turns_answered']} of {window['turns_sent']} turns unanswered")
    if window["tool_failures"]:
        problems.append(f"{window['tool_failures']} tool call(s) failed")
    if window["media_delivered_min"] is not None and window["media_delivered_min"] < 0.9:
        problems.append(f"a caller received only {window['media_delivered_min']:.0%} of the media frames")
    return problems


async def _step(cluster: Cluster, callers: list[Caller], target: int, args: argparse.Namespace) -> dict[str, Any]:
    """Add calls up to `target`, then one window of conversation; the step's figures."""
    started = time.monotonic()
    new, failures = await place_many(cluster.front.url, cluster.api_key, target - len(callers))
    callers += new
    ramp_s = time.monotonic() - started
    placed = (await asyncio.to_thread(health, cluster.front.url))["calls"]["placed"]
    before, wall = cluster.cpu(), time.monotonic()
    window = await converse(callers, args.window, args.turn_every)
    after, wall = cluster.cpu(), time.monotonic() - wall
    probes = await setup_times(cluster, args.probe_calls) if args.probe_calls and callers else None
    row = {
        "conversations": len(callers),
        "target": target,
        "ramp_s": round(ramp_s, 2),
        "setup_of_added_ms": percentiles([c.media_s * 1000 for c in new]),
        "setup_probes_under_load": probes,
        "placed_per_worker": placed,  # every call the front door placed so far (the set-up probes too)
        "window": window,
        "cpu_seconds": {name: round(after[name] - before[name], 2) for name in after},
        "cpu_percent": _cpu_percent(before, after, wall),
        "rss_mb": cluster.rss(),
    }
    row["problems"] = _problems(row, failures)
    row["carried"] = not row["problems"]
    return row


async def ramp(cluster: Cluster, args: argparse.Namespace) -> list[dict[str, Any]]:
    steps = sorted({s for s in args.steps if s <= args.conversations} | {args.conversations})
    callers: list[Caller] = []
    rows: list[dict[str, Any]] = []
    try:
        for target in steps:
            rows.append(await _step(cluster, callers, target, args))
            print(_step_text(rows[-1]), flush=True)
            if not rows[-1]["carried"]:
                break
    finally:
        await hang_up_all(callers)
    return rows


async def standin_part(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"starting the broker, gateway node, agent, {args.workers} stand-in workers, front door", flush=True)
        cluster = await asyncio.to_thread(
            start_cluster, Path(tmp), args.workers, standin=True, max_calls=args.max_calls
        )
        try:
            result: dict[str, Any] = {"rss_mb_idle": cluster.rss()}
            result["tool_round_trip"] = await tool_round_trips(cluster, args.calls)
            print(_round_trip_text(result["tool_round_trip"]), flush=True)
            result["setup"] = await setup_times(cluster, args.setup_calls)
            print(_setup_text(result["setup"]), flush=True)
            print(_STEP_HEADER, flush=True)
            result["steps"] = await ramp(cluster, args)
            print(
                "conversations without media (NATS only: tool calls, start/end, presence), bench/cluster_broker_load.py"
            )
            print(BROKER_HEADER, flush=True)
            steps = sorted({s for s in args.broker_steps if s <= args.conversations} | {0, args.conversations})
            result["broker_load"] = await broker_load(cluster, steps, args.window, args.turn_every, args.stress_every)
        finally:
            await asyncio.to_thread(cluster.stop)
    carried = [r for r in result["steps"] if r["carried"]]
    result["largest_carried"] = max((r["conversations"] for r in carried), default=0)
    broke = next((r for r in result["steps"] if not r["carried"]), None)
    result["broke_at"] = None if broke is None else {"target": broke["target"], "problems": broke["problems"]}
    return result


def _round_trip_text(results: dict[str, Any]) -> str:
    lines = ["tool-call round trip, sequential, idle (ms)", f"{'path':<32}{'p50':>8}{'p99':>8}{'max':>9}{'fail':>6}"]
    for name, r in results.items():
        lines.append(f"{name:<32}{r['p50_ms']:>8.3f}{r['p99_ms']:>8.3f}{r['max_ms']:>9.2f}{r['failures']:>6}")
    return "\n".join(lines)


def _setup_text(results: dict[str, Any]) -> str:
    lines = ["call set-up, idle (ms): answer = connect + offer/answer, media = until the first audio frame"]
    for name, r in results.items():
        a, m = r["answer_ms"], r["media_ms"]
        lines.append(
            f"  {name:<14} answer p50 {a['p50']:>7} p99 {a['p99']:>7}   media p50 {m['p50']:>7} p99 {m['p99']:>7}"
            f"  ({m['count']} calls)"
        )
    return "\n".join(lines)


_STEP_HEADER = (
    "conversations  setup p50/p99 ms   tool rt p50/p99 ms  answered   media min  "
    "CPU %: broker front gateway agent workers callers total   worker RSS MB"
)


def _step_text(row: dict[str, Any]) -> str:
    w, cpu, s = row["window"], row["cpu_percent"], row["setup_of_added_ms"]
    rt = w["tool_round_trip_ms"]
    workers_cpu = sum(v for k, v in cpu.items() if k.startswith("w"))
    rss = "/".join(f"{v:.0f}" for k, v in row["rss_mb"].items() if k.startswith("w"))
    text = (
        f"{row['conversations']:>13}  {s['p50'] or '-':>7}/{s['p99'] or '-':<8}"
        f"  {rt['p50'] or '-':>8}/{rt['p99'] or '-':<9}"
        f"  {w['turns_answered']:>4}/{w['turns_sent']:<4}  {w['media_delivered_min'] or '-':>8}  "
        f"{cpu['broker']:>13} {cpu['front']:>5} {cpu['gateway']:>7} {cpu['agent']:>5} {workers_cpu:>7.1f} "
        f"{cpu['callers']:>7} {sum(cpu.values()):>5.0f}   {rss}"
    )
    if probes := row["setup_probes_under_load"]:
        text += "\n    set-up at this load, one at a time (media ms): " + ", ".join(
            f"{name} p50 {r['media_ms']['p50']} max {r['media_ms']['max']}" for name, r in probes.items()
        )
    text += "\n    placed so far per worker: " + ", ".join(
        f"{k} {v}" for k, v in sorted(row["placed_per_worker"].items())
    )
    return text + ("" if row["carried"] else "\n    NOT carried: " + "; ".join(row["problems"]))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--conversations", type=int, default=200, help="the target (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=4, help="stand-in media workers (default: %(default)s)")
    parser.add_argument("--steps", type=ints, default=[0, 10, 20, 30, 40, 50, 100, 200], help="conversation counts")
    parser.add_argument("--broker-steps", type=ints, default=[0, 50, 100, 200], help="media-less conversations")
    parser.add_argument("--stress-every", type=float, default=0.25, help="the last media-less step's call interval")
    parser.add_argument("--max-calls", type=int, default=100, help="each stand-in worker's limit")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of conversation per step")
    parser.add_argument("--turn-every", type=float, default=5.0, help="seconds between a caller's turns")
    parser.add_argument("--calls", type=int, default=200, help="sequential tool calls per round-trip path")
    parser.add_argument("--setup-calls", type=int, default=10, help="idle set-ups each way")
    parser.add_argument("--probe-calls", type=int, default=3, help="set-ups each way at each step, under load")
    parser.add_argument("--real", action="store_true", help="then the real engines: 1 and 2 workers (minutes)")
    parser.add_argument("--real-only", action="store_true", help="only the real engines' part")
    parser.add_argument("--real-callers", type=ints, default=[1, 2, 3, 4, 5, 6, 8], help="callers per round")
    parser.add_argument("--real-e2e-limit", type=float, default=5.0, help="answered quickly: e2e p95 <= this (s)")
    parser.add_argument("--real-max-calls", type=int, default=4, help="each real worker's limit")
    parser.add_argument("--out", default="bench/results/cluster_scale.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: dict[str, Any] = {"args": vars(args)}
    if not args.real_only:
        print(STANDIN_BANNER, flush=True)
        result["standin"] = asyncio.run(standin_part(args))
        print(STANDIN_BANNER)
    if args.real or args.real_only:
        result["real"] = asyncio.run(real_part(args))
    result["plan"] = plan_text(result, args)
    print(result["plan"])
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
