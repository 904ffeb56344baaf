"""The `judge:` criterion: the platform's own LLM reads the turn and says whether it holds.

Only where a model runs here (the embedded platform of the run); against a running platform the
judge is skipped with a note, as its LLM is not reachable from the caller's side.
"""

from __future__ import annotations

import json
from typing import Any

from platform_core.engines.base import ChatMessage, LanguageModel
from platform_core.qa.results import Failure, TurnResult

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"enum": ["pass", "fail"]}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
}
_SYSTEM = (
    "You are a strict QA reviewer of a voice agent. You get one exchange between a caller and the agent, "
    "the tool calls the agent made, and a criterion. Answer with JSON: verdict pass when the criterion "
    "holds for the agent's reply, fail otherwise, and a one-sentence reason."
)


def _prompt(result: TurnResult, history: list[TurnResult], criterion: str) -> str:
    lines = [f"caller: {t.user_text}\nagent: {t.agent_text}" for t in history[-3:]]
    tools = "; ".join(
        f"{c['name']}({json.dumps(c['arguments'])}) -> {json.dumps(c['result'])}" for c in result.tool_calls
    )
    return (
        ("Earlier:\n" + "\n".join(lines) + "\n\n" if lines else "")
        + f"Caller: {result.user_text}\nAgent: {result.agent_text}\nTool calls: {tools or 'none'}\n\n"
        + f"Criterion: {criterion}"
    )


async def judge_turn(llm: LanguageModel | None, result: TurnResult, history: list[TurnResult]) -> None:
    """Judge the turn's `judge:` criterion in place: a Failure when it does not hold, `judged` the reason."""
    criterion = result.turn.expect.judge
    if criterion is None:
        return
    if llm is None:
        result.judged = "skipped: no LLM in this process (a running platform was tested; see docs/qa.md)"
        return
    messages = [ChatMessage("system", _SYSTEM), ChatMessage("user", _prompt(result, history, criterion))]
    text = "".join([d async for d in llm.stream_chat(messages, json_schema=_SCHEMA, max_tokens=120, temperature=0.0)])
    try:
        answer = json.loads(text)
        verdict, reason = str(answer["verdict"]), str(answer.get("reason", ""))
    except (ValueError, KeyError, TypeError):
        verdict, reason = "fail", f"the judge's answer was not JSON: {text[:120]!r}"
    result.judged = f"{verdict}: {reason}"
    if verdict != "pass":
        result.failures.append(Failure("judge", repr(criterion), f"the judge said: {reason}"))
