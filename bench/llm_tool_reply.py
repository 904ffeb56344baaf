"""How the embedded LLM answers once a tool has returned: the reply pass reads the tool's result.

    .venv/bin/python -m bench.llm_tool_reply [--repeat 2]

For each seed-agent tool result (a confirmed booking, the weather, a customer) the reply prompt is built
as the responder builds it (system prompt, the caller's words, the tool result as ChatMessage("tool"),
pipeline/responder.py), the model answers, and answers that refuse or deny the result are counted.
With the result as a "[tool result]" user message (what the platform sends) the 0.5B default answered a
confirmed booking "I'm sorry, I can't assist with that" 3 times in 4 in a probe; as a system note after
the caller's words ("The book_appointment tool returned: {...}. Tell the caller the result.") 0 in 12,
but in real multi-turn calls the model then repeated that note word for word as its answer to the next
turn (the example suite's barge-in scenario), so the platform keeps the user message for now.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from platform_core.config import AgentProfile
from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM
from platform_core.pipeline.responder import describe_outcome
from platform_core.pipeline.tools import ToolOutcome

CASES: list[tuple[str, str, Any]] = [
    (
        "Please book an appointment for tomorrow at ten.",
        "book_appointment",
        {"confirmed": True, "date": "2026-12-03", "time": "10:00", "confirmation": "APT-0001"},
    ),
    (
        "Please book an appointment for Friday at three in the afternoon.",
        "book_appointment",
        {"confirmed": True, "date": "2026-12-04", "time": "15:00", "confirmation": "APT-0002"},
    ),
    ("What's the weather in San Francisco?", "get_weather", {"location": "San Francisco", "temperature_c": 21}),
    ("Can you look up customer number 42?", "lookup_customer", {"id": "42", "name": "Ada Lovelace", "tier": "gold"}),
]
REFUSAL = re.compile(r"sorry|can't assist|cannot assist|don't have|unable", re.IGNORECASE)


async def run(repeat: int) -> int:
    from platform_core.models import ensure_model

    llm = EmbeddedLlamaLLM(ensure_model("qwen2.5-coder-0.5b-instruct"), threads=2)
    await llm.start()
    refused = total = 0
    try:
        for said, name, result in CASES:
            outcome = ToolOutcome(call_id="c", name=name, arguments={}, status="done", result=result)
            for _ in range(repeat):
                prompt = [
                    ChatMessage("system", AgentProfile().system_prompt),
                    ChatMessage("user", said),
                    ChatMessage("tool", describe_outcome(outcome)),
                ]
                text = "".join([d async for d in llm.stream_chat(prompt, max_tokens=60)])
                bad = bool(REFUSAL.search(text))
                refused += bad
                total += 1
                print(f"{'REFUSED' if bad else 'ok     '} {name:17} {text[:100]!r}", flush=True)
    finally:
        await llm.aclose()
    print(f"answers that refused a tool's result: {refused}/{total}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    return asyncio.run(run(parser.parse_args(argv).repeat))


if __name__ == "__main__":
    sys.exit(main())
