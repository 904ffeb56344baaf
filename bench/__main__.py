"""`make bench`: every benchmark in turn; each prints its figures and saves JSON under bench/results/."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.agent_tax",  # bench.voice_latency without and with the seed agent, by turn class
    "bench.turn_taking",
    "bench.llm_tool_choice",
    "bench.llm_tool_reply",
    "bench.tool_roundtrip",
    "bench.concurrency",
    "bench.memory",
    "bench.interruptions",
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        try:
            status = importlib.import_module(name).main([])
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
        if status:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
