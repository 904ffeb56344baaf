"""The JSON report: every run's every turn (transcript, agent text, tool calls, metrics, verdicts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from platform_core.qa.results import ScenarioResult, TurnResult
from platform_core.qa.runner import SuiteResult


def _rel(path: Path, base: Path | None) -> str:
    return os.path.relpath(path, base) if base is not None else str(path)


def _turn(t: TurnResult) -> dict[str, Any]:
    return {
        "index": t.turn.index,
        "line": t.turn.line,
        "caller": t.turn.label,
        "passed": t.passed,
        "start_s": t.start_s,
        "end_s": t.end_s,
        "platform_turns": t.platform_turns,
        "user_text": t.user_text,
        "agent_text": t.agent_text,
        "tool_calls": t.tool_calls,
        "metrics": t.metrics,
        "interrupted": t.interrupted,
        "previous_interrupted": t.previous_interrupted,
        "timed_out": t.timed_out,
        "note": t.note,
        "judge": t.judged,
        "failures": [{"expectation": f.expectation, "expected": f.expected, "got": f.got} for f in t.failures],
    }


def scenario_json(r: ScenarioResult, base: Path | None = None) -> dict[str, Any]:
    recordings = {}
    if r.folder is not None:
        recordings = {k: _rel(r.folder / f"{k}.wav", base) for k in ("caller", "agent")}
        if (r.folder / "agent.log").exists():
            recordings["agent_log"] = _rel(r.folder / "agent.log", base)
    return {
        "id": r.scenario.id,
        "name": r.scenario.name,
        "file": str(r.scenario.path),
        "run": r.run,
        "passed": r.passed,
        "problem": r.first_problem or None,
        "error": r.error,
        "conversation_id": r.record.conversation_id,
        "agent_id": r.scenario.agent_id,
        "duration_s": round(r.record.duration_s, 3),
        "ended_reason": r.record.ended_reason,
        "recordings": recordings,
        "platform_errors": [{"where": e.where, "message": e.message, "hint": e.hint} for e in r.record.tracker.errors],
        "turns": [_turn(t) for t in r.turns],
    }


def json_report(suite: SuiteResult, base: Path | None = None) -> dict[str, Any]:
    """The whole run as JSON-ready data; recording paths relative to `base` (the report's folder)."""
    tally = suite.tally()
    return {
        "passed": suite.passed,
        "stopped": suite.stopped,
        "target": suite.target,
        "started": suite.started,
        "duration_s": round(suite.duration_s, 3),
        "runs": len(suite.results),
        "failed_runs": sum(not r.passed for r in suite.results),
        "scenarios": {k: {"passed": p, "runs": n, "flaky": 0 < p < n} for k, (p, n) in tally.items()},
        "results": [scenario_json(r, base) for r in suite.results],
    }
