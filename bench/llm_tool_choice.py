"""Tool-choice accuracy and latency of the embedded LLM on the seed agent's tools.

.venv/bin/python -m bench.llm_tool_choice [--model ID_OR_GGUF] [--threads 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM
from platform_core.pipeline.tool_choice import choose_tool
from platform_core.pipeline.tools import ToolSpec


def _obj(props: dict[str, str], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": d} for name, d in props.items()},
        "required": list(required),
    }


# The seed agent's tools as it registers them (resources/agents/seed_agent.py): names, descriptions and
# parameter descriptions are what the model reads.
SEED_TOOLS = [
    ToolSpec(
        "get_weather",
        "Get the current weather for a location.",
        _obj({"location": "City name, e.g. Lisbon"}, "location"),
    ),
    ToolSpec(
        "book_appointment",
        "Book an appointment and return its confirmation.",
        _obj({"date": "Day in ISO format, YYYY-MM-DD", "time": "Time of day, HH:MM, 24-hour clock"}, "date", "time"),
    ),
    ToolSpec("lookup_customer", "Look a customer up by id.", _obj({"id": "The customer's id"}, "id")),
]

# (request, expected tool or None, {argument: substring the value must contain (case-insensitive)})
CASES: list[tuple[str, str | None, dict[str, str]]] = [
    ("What's the weather in San Francisco?", "get_weather", {"location": "san francisco"}),
    ("Is it going to rain in London today?", "get_weather", {"location": "london"}),
    ("how hot is it in Tokyo right now", "get_weather", {"location": "tokyo"}),
    ("Book me an appointment for Monday at 3 pm.", "book_appointment", {"time": "15"}),
    ("Can I get a slot on March 5th at 10:30?", "book_appointment", {"date": "-03-05", "time": "10:30"}),
    ("Look up customer 4521.", "lookup_customer", {"id": "4521"}),
    ("Can you pull up the account for customer id A-778?", "lookup_customer", {"id": "778"}),
    ("Do I need an umbrella in Paris tomorrow?", "get_weather", {"location": "paris"}),
    ("Schedule a visit for Friday at noon, please.", "book_appointment", {"time": "12"}),
    ("What's the status of customer 99812?", "lookup_customer", {"id": "99812"}),
    ("what is two plus two", None, {}),
    ("What's the capital of France?", None, {}),
    ("okay, sounds good", None, {}),
    ("What is 2 plus 2?", None, {}),
    ("Tell me a joke.", None, {}),
    ("thanks, bye", None, {}),
    ("Hi there, how are you?", None, {}),
    ("Who wrote Romeo and Juliet?", None, {}),
    # Added with issue 12: the questions the agent-connected bench got wrong, and their neighbours.
    ("What time is it in London right now?", None, {}),
    ("Please book an appointment for tomorrow at ten.", "book_appointment", {"time": "10"}),
    ("Is it going to rain in Berlin today?", "get_weather", {"location": "berlin"}),
    ("What should I cook for dinner tonight?", None, {}),
    ("Recommend a good book about space.", None, {}),
    ("Can you look up customer number 42?", "lookup_customer", {"id": "42"}),
    ("How do I make a cup of tea?", None, {}),
    ("Hello, how are you today?", None, {}),
]


def _correct(choice: Any, expected: str | None, args: dict[str, str]) -> bool:
    if choice is None or expected is None:
        return choice is None and expected is None
    if choice.name != expected:
        return False
    return all(want in str(choice.arguments.get(k, "")).lower() for k, want in args.items())


def _model_path(model: str) -> Path:
    if model.endswith(".gguf"):
        return Path(model)
    from platform_core.models import ensure_model

    return ensure_model(model)


async def _timed_reply(llm: EmbeddedLlamaLLM, messages: list[ChatMessage]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    first = 0.0
    n = 0
    async for _ in llm.stream_chat(messages, max_tokens=48, temperature=0.0):
        n += 1
        first = first or time.perf_counter() - t0
    return first, time.perf_counter() - t0, n


async def engine_figures(llm: EmbeddedLlamaLLM) -> None:
    system = ChatMessage("system", "You are a helpful voice assistant. Answer in one or two short spoken sentences.")
    cold, _, _ = await _timed_reply(llm, [system, ChatMessage("user", "Say hello.")])
    warm, total, n = await _timed_reply(llm, [system, ChatMessage("user", "Tell me about the moon.")])
    print(f"ttft cold {cold:.3f} s, prefix cached {warm:.3f} s")
    # Deltas are about one token each with llama.cpp's server.
    print(f"decode {max(n - 1, 1) / max(total - warm, 1e-6):.1f} tok/s ({n} deltas)")


async def run(model: str, threads: int, repeat: int) -> float:
    llm = EmbeddedLlamaLLM(_model_path(model), threads=threads)
    started = time.perf_counter()
    await llm.start()
    print(f"model load: {time.perf_counter() - started:.2f} s")
    await engine_figures(llm)
    latencies: list[float] = []
    right = total = 0
    try:
        await choose_tool(llm, [ChatMessage("user", "hello")], SEED_TOOLS)  # prime the prompt cache
        for _ in range(repeat):
            for text, expected, args in CASES:
                t0 = time.perf_counter()
                choice = await choose_tool(llm, [ChatMessage("user", text)], SEED_TOOLS)
                latencies.append(time.perf_counter() - t0)
                ok = _correct(choice, expected, args)
                right += ok
                total += 1
                got = f"{choice.name} {dict(choice.arguments)}" if choice else "none"
                print(f"{'ok ' if ok else 'BAD'} {latencies[-1]:5.2f} s  {text!r} -> {got}")
    finally:
        await llm.aclose()
    lat = sorted(latencies)
    p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
    print(f"accuracy: {right}/{total} = {right / total:.0%}")
    print(f"latency p50 {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return right / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="manifest id or .gguf path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    ns = parser.parse_args(argv)
    asyncio.run(run(ns.model, ns.threads, ns.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
