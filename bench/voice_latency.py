"""Voice-to-voice latency on the default engines, over real WebRTC calls to a real platform process.

    .venv/bin/python -m bench.voice_latency [--agent] [--threads N] [--out FILE.json]

With --agent the seed agent (resources/agents/seed_agent.py) serves the calls in its own process, so
weather, booking and customer questions go through tool choice and a real tool call.

Speaks each utterance (made with the platform's own Piper voice) into a call, collects every turn's
metrics from the call report, prints p50/p95 per stage and turn by turn, and the platform's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import save_result
from platform_core.events import METRICS

# The report's per-turn figures (tool calls are per call: the turn lines name them instead).
COLUMNS = tuple(name for name, info in METRICS.items() if not info.per_tool_call)
UTTERANCES = [
    "What's the weather in San Francisco?",
    "Hello, how are you today?",
    "Can you tell me a short joke?",
    "What is the capital of France?",
    "How many days are there in a week?",
    "Please book an appointment for tomorrow at ten.",
    "What should I cook for dinner tonight?",
    "Thank you, that was helpful.",
    "What time is it in London right now?",
    "Recommend a good book about space.",
    "How do I make a cup of tea?",
    "Who wrote Romeo and Juliet?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def synthesize_utterances(folder: Path, utterances: list[str]) -> list[Path]:
    from platform_core.cli.demo import write_speech_wav
    from platform_core.engines.tts.piper import PiperTTS
    from platform_core.models.store import ensure_model

    tts = PiperTTS(ensure_model("piper-joe"))
    paths = []
    for i, text in enumerate(utterances):
        path = folder / f"utterance_{i:02d}.wav"
        write_speech_wav(list(tts.synthesize(text, steady=True)), tts.sample_rate, path)
        paths.append(path)
    tts.close()
    return paths


def _start_seed_agent(platform: Any) -> subprocess.Popen[bytes]:
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_sdk.cli",
            "run",
            "resources/agents/seed_agent.py",
            "--url",
            platform.gateway_url,
            "--api-key",
            platform.api_key,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)  # connected and joined
    return agent


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of the platform and its children (the llama.cpp server), summed: an upper bound."""
    import psutil

    total = 0.0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


async def run(args: argparse.Namespace, utterances: list[str] | None = None) -> dict[str, Any]:
    from bench.harness import start_platform, stop_platform
    from platform_core.calls import place_call

    utterances = utterances or UTTERANCES
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wavs = synthesize_utterances(folder, utterances)
        started = time.monotonic()
        threads = ["--threads", str(args.threads)] if args.threads else []
        platform = start_platform(folder, "-v", *threads, *getattr(args, "extra", []))
        print(f"platform ready in {time.monotonic() - started:.1f} s (pid {platform.process.pid})")
        turns: list[dict[str, Any]] = []
        agent = _start_seed_agent(platform) if args.agent else None
        try:
            for text, wav in zip(utterances, wavs, strict=True):
                report = await place_call(
                    platform.url, "seed" if agent else None, input_wav=wav, api_key=platform.api_key
                )
                for turn in report["turns"]:
                    turns.append({"said": text, **turn})
                    m = turn["metrics"]
                    cells = " ".join(f"{(m.get(k) or 0) * 1000:6.0f}" for k in COLUMNS)
                    tools = ",".join(c["name"] for c in turn["tool_calls"]) or "-"
                    print(f"{cells}  {turn['user_text'][:36]!r} [{tools}] -> {turn['agent_text'][:36]!r}", flush=True)
            rss = peak_rss_mb(platform.process.pid)
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(20)
            stop_platform(platform.process)
            await asyncio.sleep(0.5)  # the log reader thread writes the platform's last lines
            log_text = platform.log_path.read_text()
            Path(args.out).with_suffix(".platform.log").write_text(log_text)  # llama.cpp timings, stalls
            stall = re.search(r"event loop: worst stall (\d+) ms, (\d+) stalls[^(\n]*(?:\(worst in (.*)\))?", log_text)
    summary = {}
    for name in COLUMNS:
        values = [t["metrics"][name] for t in turns if t["metrics"].get(name) is not None]
        if values:
            summary[name] = {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}
    loop = (
        {
            "worst_stall_ms": int(stall.group(1)),
            "stalls_over_50ms": int(stall.group(2)),
            "worst_in": stall.group(3) or "",
        }
        if stall
        else {}
    )
    return {"turns": turns, "summary": summary, "platform_peak_rss_mb": rss, "event_loop": loop}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results/voice_latency.json")
    parser.add_argument("--agent", action="store_true", help="calls go to the seed agent (tool calls)")
    parser.add_argument("--threads", type=int, default=0, help="engine threads (default: the platform's auto)")
    parser.add_argument("--turn-detection", choices=["smart-turn", "silence"], help="default: the platform's")
    args = parser.parse_args(argv)
    args.extra = ["--turn-detection", args.turn_detection] if args.turn_detection else []
    print("columns (ms): " + " ".join(COLUMNS))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args))
    print(f"\n{'metric':22} {'p50 ms':>8} {'p95 ms':>8} {'n':>4}")
    for name, s in result["summary"].items():
        print(f"{name:22} {s['p50'] * 1000:8.0f} {s['p95'] * 1000:8.0f} {s['n']:4d}")
    print(f"platform peak RSS (with its llama.cpp process): {result['platform_peak_rss_mb']:.0f} MB")
    if result["event_loop"]:
        loop = result["event_loop"]
        where = f", worst in {loop['worst_in']}" if loop["worst_in"] else ""
        print(
            f"platform event loop: worst stall {loop['worst_stall_ms']} ms, "
            f"{loop['stalls_over_50ms']} stalls over 50 ms{where}"
        )
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
