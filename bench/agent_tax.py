"""What an agent costs a turn: the same spoken questions without and with the seed agent, in one run.

    .venv/bin/python -m bench.agent_tax [--out FILE.json]

Runs bench/voice_latency.py twice on the default engines (a fresh platform each time): without an
agent, then with the seed agent (resources/agents/seed_agent.py) in its own process, over real WebRTC
calls, one call per question. Turns are put in classes: without an agent; with the agent and no tool
called; with a tool called; and each run's first call (the platform just started). Prints p50/p95 of
every stage per class and the ratios the latency targets are about (docs/engines.md, "Latency with an agent"):

- agent connected, no tool / no agent: e2e_latency p50 and p95;
- tool turn answer_latency p50 / no-agent e2e_latency p50;
- each first call / the warm p50 of its class.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.voice_latency import COLUMNS, UTTERANCES, percentile, run

# Beside the general questions, more that need a tool (the seed agent's weather, booking, customers).
TOOL_QUESTIONS = [
    "Is it going to rain in Berlin today?",
    "What's the weather like in Tokyo?",
    "Please book an appointment for Friday at three in the afternoon.",
    "Can you look up customer number 42?",
]
QUESTIONS = [*UTTERANCES, *TOOL_QUESTIONS]


def classify(no_agent: list[dict[str, Any]], agent: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Turns by class; a run's first call is its own class (its turns are in no other)."""
    return {
        "no agent": no_agent[1:],
        "agent, no tool": [t for t in agent[1:] if not t["tool_calls"]],
        "agent, tool": [t for t in agent[1:] if t["tool_calls"]],
        "first call, no agent": no_agent[:1],
        "first call, agent": agent[:1],
    }


def stats(turns: list[dict[str, Any]], name: str) -> dict[str, float] | None:
    values = [t["metrics"][name] for t in turns if t["metrics"].get(name) is not None]
    if not values:
        return None
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def ratios(classes: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    def p(cls: str, name: str, q: str = "p50") -> float | None:
        s = stats(classes[cls], name)
        return s[q] if s else None

    out: dict[str, float] = {}
    base = p("no agent", "e2e_latency")
    pairs = {
        "agent no-tool / no agent, e2e p50": (p("agent, no tool", "e2e_latency"), base),
        "agent no-tool / no agent, e2e p95": (
            p("agent, no tool", "e2e_latency", "p95"),
            p("no agent", "e2e_latency", "p95"),
        ),
        "tool answer_latency p50 / no-agent e2e p50": (p("agent, tool", "answer_latency"), base),
        "first call no agent / its warm p50 (e2e)": (p("first call, no agent", "e2e_latency"), base),
    }
    first = classes["first call, agent"]
    if first:
        warm = "agent, tool" if first[0]["tool_calls"] else "agent, no tool"
        name = "answer_latency" if first[0]["tool_calls"] else "e2e_latency"
        pairs[f"first call agent / warm p50 of '{warm}' ({name})"] = (p("first call, agent", name), p(warm, name))
    for label, (a, b) in pairs.items():
        if a is not None and b:
            out[label] = a / b
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results/agent_tax.json")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--draft", action="store_true", help="the platform drafts replies (--llm-draft-reply)")
    args = parser.parse_args(argv)
    results = {}
    extra = ["--llm-draft-reply"] if args.draft else []
    for label, with_agent in (("no agent", False), ("agent", True)):
        print(f"\n--- {label}: {len(QUESTIONS)} calls; columns (ms): {' '.join(COLUMNS)}", flush=True)
        run_args = argparse.Namespace(
            agent=with_agent, threads=args.threads, out=f"{args.out}.{label[:2]}.json", extra=extra
        )
        results[label] = asyncio.run(run(run_args, QUESTIONS))
    classes = classify(results["no agent"]["turns"], results["agent"]["turns"])
    print(f"\n{'class':22} {'stage':20} {'p50 ms':>7} {'p95 ms':>7} {'n':>3}")
    summary: dict[str, dict[str, Any]] = {}
    for cls, turns in classes.items():
        summary[cls] = {}
        for name in COLUMNS:
            s = stats(turns, name)
            if s is None:
                continue
            summary[cls][name] = s
            print(f"{cls:22} {name:20} {s['p50'] * 1000:7.0f} {s['p95'] * 1000:7.0f} {s['n']:3d}")
    found = ratios(classes)
    print()
    for label, value in found.items():
        print(f"{label:60} {value:5.2f}")
    for label in ("no agent", "agent"):
        print(f"platform peak RSS, {label}: {results[label]['platform_peak_rss_mb']:.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"classes": summary, "ratios": found, "runs": results}, indent=2, default=str))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
