"""Memory of `conversimple-platform serve` over many calls: what each call leaves behind.

    .venv/bin/python -m bench.memory [--calls 200] [--agent-calls 0.5] [--malloc-arena-max N]
        [--out bench/results/memory.json]

A real platform in its own process; N short real WebRTC calls one after another, alternating a typed
turn and a short spoken WAV (the platform's own Piper voice). For the middle `--agent-calls` share of
the calls the seed agent is connected in its own process and those calls go to it (the gateway keeps
per-conversation state). After each call the bench reads VmRSS and VmHWM from /proc of the serve
process and, separately, of its llama.cpp child. It prints RSS after calls 10, 50, 100 and N and the
growth per call: the least-squares slope of VmRSS over calls 10..N (target: flat, within 50 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import start_platform, stop_platform
from bench.voice_latency import _start_seed_agent
from platform_core.calls import place_call

TYPED = "Say hello in three words."
SPOKEN = "Hello there."
WARM_CALLS = 10  # growth is measured from here: the first calls fill caches and pools once
MARKS = (10, 50, 100, 200)


def proc_memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of one process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the llama.cpp server), from /proc."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares growth per call (MiB per call) of (call number, MiB) points."""
    if len(points) < 2:
        return 0.0
    xs, ys = [float(x) for x, _ in points], [y for _, y in points]
    return float(statistics.linear_regression(xs, ys).slope)


def _speech_wav(folder: Path) -> Path:
    from platform_core.cli.demo import write_speech_wav
    from platform_core.engines.tts.piper import PiperTTS
    from platform_core.models.store import ensure_model

    tts = PiperTTS(ensure_model("piper-joe"))
    path = folder / "hello.wav"
    write_speech_wav(list(tts.synthesize(SPOKEN, steady=True)), tts.sample_rate, path)
    tts.close()
    return path


def _agent_window(calls: int, share: float) -> range:
    """The calls (1-based) placed while the seed agent is connected: the middle `share` of them."""
    width = round(calls * share)
    start = (calls - width) // 2 + 1
    return range(start, start + width)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.malloc_arena_max:
        os.environ["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)  # inherited by the serve process
    window = _agent_window(args.calls, args.agent_calls)
    samples: list[dict[str, Any]] = []
    statuses: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wav = _speech_wav(folder)
        running = start_platform(folder)
        pid = running.process.pid
        agent = None
        started = time.monotonic()
        try:
            for n in range(1, args.calls + 1):
                if n == window.start and len(window):
                    agent = _start_seed_agent(running)
                if agent is not None and n == window.stop:
                    agent.terminate()
                    agent.wait(20)
                    agent = None
                agent_id = "seed" if agent is not None else None
                spoken = n % 2 == 0
                report = await place_call(
                    running.url,
                    agent_id,
                    input_wav=wav if spoken else None,
                    text=None if spoken else TYPED,
                    api_key=running.api_key,
                    max_duration_s=60.0,
                    quiet_s=0.5,
                    input_tail_s=1.0,
                )
                statuses[report["status"]] = statuses.get(report["status"], 0) + 1
                sample = {"call": n, "serve": proc_memory_mib(pid), "agent": agent_id is not None}
                sample["llm"] = [proc_memory_mib(child) for child in child_pids(pid)]
                samples.append(sample)
                if n in MARKS or n == args.calls or n % 25 == 0:
                    print(_line(sample, time.monotonic() - started), flush=True)
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(20)
            stop_platform(running.process)
    return _summary(samples, statuses, args)


def _line(sample: dict[str, Any], elapsed: float) -> str:
    serve = sample["serve"]
    llm = sum(m["VmRSS"] for m in sample["llm"])
    return (
        f"call {sample['call']:4d}  serve VmRSS {serve['VmRSS']:7.1f} MiB  VmHWM {serve['VmHWM']:7.1f} MiB  "
        f"llama.cpp VmRSS {llm:7.1f} MiB  ({elapsed:.0f} s)"
    )


def _summary(samples: list[dict[str, Any]], statuses: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    after_warm = [s for s in samples if s["call"] >= WARM_CALLS]
    rss = [(s["call"], s["serve"]["VmRSS"]) for s in after_warm]
    llm = [(s["call"], sum(m["VmRSS"] for m in s["llm"])) for s in after_warm]
    at = {s["call"]: s for s in samples}
    return {
        "calls": args.calls,
        "malloc_arena_max": args.malloc_arena_max or None,
        "statuses": statuses,
        "serve_rss_at": {n: at[n]["serve"]["VmRSS"] for n in (*MARKS, args.calls) if n in at},
        "serve_hwm_at": {n: at[n]["serve"]["VmHWM"] for n in (*MARKS, args.calls) if n in at},
        "serve_growth_after_warm_mib": (rss[-1][1] - rss[0][1]) if rss else None,
        "serve_mib_per_call": slope(rss),
        "llm_mib_per_call": slope(llm),
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--agent-calls", type=float, default=0.5, help="share of calls with the seed agent (0..1)")
    parser.add_argument("--malloc-arena-max", type=int, default=0, help="MALLOC_ARENA_MAX for serve (0: unset)")
    parser.add_argument("--out", default="bench/results/memory.json")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(f"statuses: {result['statuses']}")
    print("serve VmRSS after call " + ", ".join(f"{n}: {v:.0f} MiB" for n, v in result["serve_rss_at"].items()))
    print("serve VmHWM after call " + ", ".join(f"{n}: {v:.0f} MiB" for n, v in result["serve_hwm_at"].items()))
    growth = result["serve_growth_after_warm_mib"]
    print(
        f"serve growth after call {WARM_CALLS}: {growth:.1f} MiB, {result['serve_mib_per_call'] * 1024:.0f} KiB/call "
        f"(slope); llama.cpp {result['llm_mib_per_call'] * 1024:.0f} KiB/call"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
