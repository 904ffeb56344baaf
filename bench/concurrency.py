"""Concurrent callers: how many can call at once and all be answered, and what happens to the next one.

    .venv/bin/python -m bench.concurrency [--callers 1,2,3,4,5,6] [--max-calls 4] [--llm-parallel 1]
        [--llm-queue-wait 20] [--out bench/results/concurrency.json]

A real platform in its own process (`serve`, default engines, `--max-calls`); for each N, N real WebRTC
callers connect at the same moment and each types one question (typed, so the figure is the LLM's and
the voice's share, not whisper's). A caller is answered when its report's status is "ok" and the agent
said something. Per N: how many were answered, the outcomes of the others, and the answer's latency
(typed -> the agent's first audio) p50/p95. Outcomes: "busy at connect" (admission control refused
the call: more than `max_calls` at once), "llm busy" (admitted, waited `llm_queue_wait_s` for the LLM
and heard the busy answer; status `turn_failed`), else the report's status or the exception's type.
Each round starts once the platform has forgotten the previous round's calls (`/healthz?format=json`,
`calls.in_progress` 0), so a round is never refused for calls that are only still being torn down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, TypeGuard

from bench.harness import start_platform, stop_platform
from platform_core.calls import place_call
from platform_core.calls.report import percentile_summary
from platform_core.transport.client import CallError

BUSY_AT_CONNECT = "the platform refused the call: busy:"  # CallError.message of an admission refusal

QUESTIONS = [
    "What is the capital of France?",
    "How many days are in a week?",
    "What colour is the sky on a clear day?",
    "Name a fruit that is yellow.",
    "What is two plus three?",
    "Which animal says moo?",
    "What is the opposite of hot?",
    "How many legs does a spider have?",
]


def _answered(report: dict[str, Any] | BaseException) -> bool:
    if isinstance(report, BaseException):
        return False
    turns = report["turns"]
    return bool(report["status"] == "ok" and turns and turns[0]["agent_text"] and not turns[0]["failed"])


def _refused_busy(report: dict[str, Any] | BaseException) -> TypeGuard[CallError]:
    return isinstance(report, CallError) and report.message.startswith(BUSY_AT_CONNECT)


def _outcome(report: dict[str, Any] | BaseException) -> str:
    if _refused_busy(report):
        return "busy at connect"
    if isinstance(report, BaseException):
        return f"{type(report).__name__}"
    turns = report["turns"]
    if report["status"] == "turn_failed" and turns and "busy" in (turns[0]["error"] or ""):
        return "llm busy"
    return str(report["status"])


def calls_in_progress(url: str) -> int:
    """The platform's calls answered or being answered (its admission count), from /healthz."""
    request = urllib.request.Request(f"{url}/healthz?format=json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.loads(response.read())["calls"]["in_progress"])


async def wait_for_no_calls(url: str, timeout_s: float = 30.0) -> None:
    """Until the previous round's calls are forgotten: they still count against `max_calls` till then."""
    deadline = time.monotonic() + timeout_s
    while (left := await asyncio.to_thread(calls_in_progress, url)) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} call(s) still in progress {timeout_s:.0f} s after the round ended")
        await asyncio.sleep(0.2)


async def call_round(url: str, api_key: str, n: int, timeout_s: float) -> dict[str, Any]:
    reports = await asyncio.gather(
        *(
            place_call(url, text=QUESTIONS[i % len(QUESTIONS)], api_key=api_key, max_duration_s=timeout_s)
            for i in range(n)
        ),
        return_exceptions=True,
    )
    answered = [r for r in reports if _answered(r)]
    latencies = [
        float(t["metrics"]["e2e_latency"])
        for r in answered
        if isinstance(r, dict)
        for t in r["turns"][:1]
        if t["metrics"].get("e2e_latency") is not None
    ]
    refusal = next((r.message for r in reports if _refused_busy(r)), None)
    return {
        "callers": n,
        "answered": len(answered),
        "outcomes": dict(Counter(_outcome(r) for r in reports)),
        "busy_refusal": refusal,  # what a caller over the limit is told
        "e2e": percentile_summary(latencies),
        "e2e_max": round(max(latencies), 3) if latencies else None,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--llm-parallel", str(args.llm_parallel), "--llm-queue-wait", str(args.llm_queue_wait)]
    extra += ["--max-calls", str(args.max_calls)]
    with tempfile.TemporaryDirectory() as tmp:
        running = start_platform(Path(tmp), *extra)
        try:
            await place_call(running.url, text="Hello.", api_key=running.api_key)  # warm: prompt cache, first load
            rows = []
            for n in args.callers:
                await wait_for_no_calls(running.url)
                rows.append(await call_round(running.url, running.api_key, n, args.timeout))
                print(_row_text(rows[-1]), flush=True)
        finally:
            stop_platform(running.process)
    all_answered = [r["callers"] for r in rows if r["answered"] == r["callers"]]
    largest = max(all_answered, default=0)
    after = next((r for r in rows if r["callers"] > largest), None)
    return {
        "max_calls": args.max_calls,
        "llm_parallel": args.llm_parallel,
        "llm_queue_wait_s": args.llm_queue_wait,
        "rows": rows,
        "largest_all_answered": largest,
        "next": after,
    }


def _row_text(row: dict[str, Any]) -> str:
    e2e = row["e2e"]
    p50 = f"{e2e['p50']:.2f}" if e2e["p50"] is not None else "-"
    p95 = f"{e2e['p95']:.2f}" if e2e["p95"] is not None else "-"
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
    return f"{row['callers']:>7}{row['answered']:>10}{p50:>9}{p95:>9}   {outcomes}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3, 4, 5, 6])
    parser.add_argument(
        "--max-calls", type=int, default=4, help="the platform's concurrent calls limit (default: %(default)s)"
    )
    parser.add_argument("--llm-parallel", type=int, default=1, help="llama.cpp slots (default: %(default)s)")
    parser.add_argument("--llm-queue-wait", type=float, default=20.0, help="seconds before a busy answer")
    parser.add_argument("--timeout", type=float, default=90.0, help="each call's cap in seconds")
    parser.add_argument("--out", default="bench/results/concurrency.json")
    args = parser.parse_args(argv)
    print(
        f"concurrent typed callers, max_calls={args.max_calls}, llm_parallel={args.llm_parallel}, "
        f"llm_queue_wait_s={args.llm_queue_wait}"
    )
    print(f"{'callers':>7}{'answered':>10}{'e2e p50':>9}{'e2e p95':>9}   outcomes")
    result = asyncio.run(run(args))
    after = result["next"]
    print(f"largest N all answered: {result['largest_all_answered']}")
    if after is not None:
        print(f"next (N={after['callers']}): {after['answered']} answered, outcomes {after['outcomes']}")
        if after["busy_refusal"]:
            print(f"  told: {after['busy_refusal']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
