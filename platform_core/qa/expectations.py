"""Checking a turn's result against its `expect:` block; each miss is a `Failure` saying what happened."""

from __future__ import annotations

import json
import re
from typing import Any

from platform_core.qa.results import Failure, TurnResult
from platform_core.qa.scenario import Expectation, ToolExpectation


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else text[: n - 1] + "…")


def _fold(value: Any) -> Any:
    """Case-insensitive, whitespace-tolerant form of an argument value, for comparing."""
    if isinstance(value, str):
        return " ".join(value.lower().split())
    if isinstance(value, dict):
        return {str(k).lower(): _fold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def args_match(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Every expected argument is present with an equal value (strings case-insensitively; a
    number also equals its text, as small models often quote numbers)."""
    got = _fold(actual)
    for key, want in _fold(expected).items():
        if key not in got:
            return False
        have = got[key]
        if have != want and str(have) != str(want):
            return False
    return True


def _calls_text(calls: list[dict[str, Any]]) -> str:
    if not calls:
        return "no tool call"
    return ", ".join(f"{c['name']}({json.dumps(c['arguments'])}) {c['status']}" for c in calls)


def _tool_failure(want: ToolExpectation, calls: list[dict[str, Any]]) -> Failure | None:
    named = [c for c in calls if c["name"] == want.name]
    label = f"tool {want.name}" + (f" with {json.dumps(want.args)}" if want.args else "") + f" ({want.status})"
    if any(args_match(want.args, c["arguments"] or {}) and c["status"] == want.status for c in named):
        return None
    return Failure("tool", label, _calls_text(calls))


def _word_failures(expect: Expectation, result: TurnResult) -> list[Failure]:
    heard, said = result.user_text.lower(), result.agent_text.lower()
    failures = []
    missing = [w for w in expect.transcript_contains if w.lower() not in heard]
    if missing:
        failures.append(
            Failure("transcript_contains", f"the words {missing}", f"the transcript {_clip(result.user_text)}")
        )
    if expect.agent_says_any and not any(w.lower() in said for w in expect.agent_says_any):
        failures.append(Failure("agent_says_any", f"one of {list(expect.agent_says_any)}", _clip(result.agent_text)))
    absent = [w for w in expect.agent_says_all if w.lower() not in said]
    if absent:
        failures.append(Failure("agent_says_all", f"also {absent}", _clip(result.agent_text)))
    present = [w for w in expect.agent_not_says if w.lower() in said]
    if present:
        failures.append(Failure("agent_not_says", f"none of {present}", _clip(result.agent_text)))
    if expect.agent_matches is not None and not re.search(expect.agent_matches, result.agent_text, re.I):
        failures.append(Failure("agent_matches", f"a match for /{expect.agent_matches}/", _clip(result.agent_text)))
    return failures


def check_turn(result: TurnResult) -> list[Failure]:
    """Every expectation of the turn that did not hold (a judge is run separately: judge.py)."""
    expect, turn = result.turn.expect, result.turn
    failures = _word_failures(expect, result)
    if turn.silence_s is None and not expect.agent_silent and not result.platform_turns:
        failures.append(Failure("answered", "a turn the platform heard and answered", "no turn started"))
    for want in expect.tools:
        if (failure := _tool_failure(want, result.tool_calls)) is not None:
            failures.append(failure)
    if expect.no_tool and result.tool_calls:
        failures.append(Failure("no_tool", "no tool call", _calls_text(result.tool_calls)))
    for name, budget in expect.max_latency_s.items():
        value = result.metrics.get(name)
        if value is None:
            failures.append(Failure(f"max_latency_s.{name}", f"at most {budget:g} s", "not measured in this turn"))
        elif value > budget:
            failures.append(Failure(f"max_latency_s.{name}", f"at most {budget:g} s", f"{value:.3f} s"))
    if expect.interrupted is not None and result.previous_interrupted != expect.interrupted:
        got = (
            "no answer to speak over"
            if result.previous_interrupted is None
            else ("it was cut" if result.previous_interrupted else "it played to the end")
        )
        wanted = "the previous answer cut" if expect.interrupted else "the previous answer played to the end"
        failures.append(Failure("interrupted", wanted, got))
    if expect.agent_silent and result.agent_spoke:
        failures.append(Failure("agent_silent", "the agent to stay quiet", f"it answered {_clip(result.agent_text)}"))
    return failures
