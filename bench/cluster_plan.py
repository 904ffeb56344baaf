"""bench/cluster_scale.py's second part and conclusion: the real engines behind the front door (1, then 2
workers: how many concurrent callers are all answered), and the plan past this machine computed from the
figures measured."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.cluster_broker_load import broker_us_per_call
from bench.cluster_procs import start_cluster
from bench.concurrency import call_round, wait_for_no_calls
from platform_core.calls import place_call


async def _rounds(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"real engines: {workers} worker(s) behind the front door (max_calls {args.real_max_calls} each)")
        cluster = await asyncio.to_thread(
            start_cluster, Path(tmp), workers, standin=False, max_calls=args.real_max_calls
        )
        rows: list[dict[str, Any]] = []
        try:
            for running in cluster.workers.values():  # warm each worker: the prompt cache, the first load
                await place_call(running.url, text="Hello.", api_key=cluster.api_key)
            print(f"{'callers':>7}{'answered':>10}{'e2e p50':>9}{'e2e p95':>9}   outcomes", flush=True)
            for n in args.real_callers:
                for running in cluster.workers.values():
                    await wait_for_no_calls(running.url, 60)
                row = await call_round(cluster.front.url, cluster.api_key, n, 90.0)
                rows.append(row)
                e2e = row["e2e"]
                outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
                print(
                    f"{n:>7}{row['answered']:>10}{e2e['p50'] or '-':>9}{e2e['p95'] or '-':>9}   {outcomes}", flush=True
                )
                if row["answered"] < n:
                    break
        finally:
            await asyncio.to_thread(cluster.stop)
    answered = [r for r in rows if r["answered"] == r["callers"]]
    largest = max((r["callers"] for r in answered), default=0)
    limit = args.real_e2e_limit
    quick = max((r["callers"] for r in answered if (r["e2e"]["p95"] or 0) <= limit), default=0)
    print(f"{workers} worker(s): largest N all answered: {largest}; with e2e p95 <= {limit:g} s: {quick}", flush=True)
    return {"workers": workers, "rows": rows, "largest_all_answered": largest, "largest_answered_quickly": quick}


async def real_part(args: argparse.Namespace) -> dict[str, Any]:
    """The real default engines: 1 worker, then 2 (on this machine they share its cores)."""
    return {f"{n}_workers": await _rounds(n, args) for n in (1, 2)}


def _per_conversation(rows: list[dict[str, Any]], name: str) -> float | None:
    """CPU % of one core per conversation for the process(es) `name` ("w" for every worker), above idle."""
    idle = next((r for r in rows if r["conversations"] == 0), None)
    top = max(
        (r for r in rows if r["carried"] and r["conversations"] > 0), key=lambda r: r["conversations"], default=None
    )
    if top is None:
        return None

    def total(row: dict[str, Any]) -> float:
        return sum(v for k, v in row["cpu_percent"].items() if (k.startswith("w") if name == "w" else k == name))

    above = total(top) - (total(idle) if idle is not None else 0.0)
    return max(above, 0.0) / top["conversations"]


def _standin_lines(standin: dict[str, Any], args: argparse.Namespace, cores: int) -> list[str]:
    lines: list[str] = []
    rows = standin["steps"]
    per = {name: _per_conversation(rows, name) for name in ("w", "broker", "front", "gateway", "agent")}
    if per["w"]:
        lines.append(
            "- cluster costs alone (stand-in engines, WebRTC included): a worker process spends"
            f" {per['w']:.2f} % of a core per conversation (one typed turn + tool call every"
            f" {args.turn_every:g} s), i.e. about"
            f" {100 / per['w']:.0f} conversations per worker core before any engine work; largest count carried"
            f" here: {standin['largest_carried']} on {cores} cores shared with the callers' own WebRTC."
        )
    per_call = broker_us_per_call(standin.get("broker_load", []))
    if per_call:
        rate = 1 / args.turn_every
        lines.append(
            f"- nats-server: {per_call:.0f} us of CPU per tool call (media-less conversations), so one broker core"
            f" serves about {1e6 / per_call:,.0f} tool calls/s: {1e6 / per_call / rate:,.0f} conversations at one"
            f" tool call every {args.turn_every:g} s"
        )
    for name, label in (("front", "front door"), ("gateway", "gateway node")):
        if share := per[name]:
            lines.append(
                f"- {label}: {share:.3f} % of a core per conversation -> one core carries about"
                f" {100 / share:,.0f} conversations at this turn rate"
            )
    return lines


def _real_lines(
    real: dict[str, Any], standin: dict[str, Any] | None, args: argparse.Namespace, cores: int
) -> list[str]:
    lines: list[str] = []
    one, two = real["1_workers"]["largest_all_answered"], real["2_workers"]["largest_all_answered"]
    one_q, two_q = real["1_workers"]["largest_answered_quickly"], real["2_workers"]["largest_answered_quickly"]
    limit = args.real_e2e_limit
    lines.append(
        f"- real engines: {one} concurrent callers all answered with 1 worker ({one_q} with e2e p95 <= {limit:g} s)"
        ","
        f" {two} with 2 workers on the same {cores} cores ({two_q} within {limit:g} s): "
        + (
            "a second worker on the same cores adds a second LLM competing for them, not capacity."
            if two_q <= one_q
            else "the second worker added capacity even on the same cores."
        )
        + " Conversations per worker core:"
        f" {one_q / cores:.1f} answered within {limit:g} s; the engines (the LLM above all), not the cluster,"
        " set the limit."
    )
    one = one_q
    per_call = broker_us_per_call(standin.get("broker_load", [])) if standin is not None else None
    total = 100 * one
    calls_per_s = total / args.turn_every
    broker_cores = f"{calls_per_s * per_call / 1e6:.3f} of a core" if per_call else "an unmeasured share"
    lines.append(
        f"- 100 machines like this one ({cores} cores, one real-engine worker each, callers elsewhere) would carry"
        f" about {total} concurrent conversations; the broker would spend about {broker_cores} on them at one"
        f" tool call per conversation every {args.turn_every:g} s, one front door and one gateway node likewise"
        " a fraction of a core. Assumed: the per-conversation costs measured here scale linearly, the machines'"
        " cores are like these, the network between machines adds no CPU, and every conversation is a typed or"
        " spoken turn of the same size as here (the LLM's answer length sets the real limit)."
    )
    return lines


def plan_text(result: dict[str, Any], args: argparse.Namespace) -> str:
    """The "plan past the machine" paragraph, from the figures of this run (say what is assumed)."""
    cores = os.cpu_count() or 2
    lines = ["", "plan past the machine (from this run's figures)"]
    standin, real = result.get("standin"), result.get("real")
    if standin is not None:
        lines += _standin_lines(standin, args, cores)
    if real is not None:
        lines += _real_lines(real, standin, args, cores)
    else:
        lines.append(
            "- real engines: not run (add --real): the conversations per core with the engines are unknown here"
        )
    return "\n".join(lines)
