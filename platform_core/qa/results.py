"""What a scenario run produced: the call's events sorted into the scenario's turns, and the verdict."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platform_core.events import AgentSpeakingChanged, AgentTextDelta, TurnStarted
from platform_core.qa.driver import CallRecord, TurnRecord
from platform_core.qa.scenario import Scenario, Turn

_TOOL_FIELDS = ("name", "arguments", "status", "result", "error", "duration_s")


@dataclass(frozen=True)
class Failure:
    """One expectation that did not hold: which, what it wanted, what happened instead."""

    expectation: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.expectation}: expected {self.expected}, got {self.got}"


@dataclass
class TurnResult:
    turn: Turn
    start_s: float  # into the call
    end_s: float | None
    platform_turns: list[int]
    user_text: str
    agent_text: str
    tool_calls: list[dict[str, Any]]
    metrics: dict[str, float]
    interrupted: bool  # this turn's answer was cut
    previous_interrupted: bool | None  # the answer this turn spoke over was cut (barge-in turns)
    agent_spoke: bool
    timed_out: bool
    note: str = ""
    failures: list[Failure] = field(default_factory=list)
    judged: str | None = None  # the judge's reason, or why it was skipped

    @property
    def passed(self) -> bool:
        return not self.failures and not self.timed_out


@dataclass
class ScenarioResult:
    scenario: Scenario
    run: int  # 1-based, with --repeat
    record: CallRecord
    turns: list[TurnResult]
    folder: Path | None = None  # where its recordings are
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.passed for t in self.turns) and len(self.turns) == len(self.scenario.turns)

    @property
    def first_problem(self) -> str:
        """The first thing that went wrong, in one line (scenario, turn, expectation, what happened)."""
        if self.error is not None:
            return f"the call failed: {self.error}"
        for t in self.turns:
            if t.timed_out:
                return f"turn {t.turn.index} ({t.turn.label}): {t.note}"
            if t.failures:
                return f"turn {t.turn.index} ({t.turn.label}): {t.failures[0]}"
        missing = len(self.scenario.turns) - len(self.turns)
        return f"{missing} turn(s) never played" if missing else ""


def _windows(record: CallRecord) -> list[tuple[TurnRecord, float, float]]:
    """Each played turn with the time span its platform turns started in: its start -> the next's."""
    spans = []
    for i, rec in enumerate(record.turns):
        end = record.turns[i + 1].started_at if i + 1 < len(record.turns) else float("inf")
        spans.append((rec, rec.started_at, end))
    return spans


def _metrics(completed: list[Any], tool_calls: list[dict[str, Any]]) -> dict[str, float]:
    """The worst value per metric over the turn's platform turns (a budget holds for each of them)."""
    out: dict[str, float] = {}
    for done in completed:
        for name, value in done.metrics.items():
            if value is not None:
                out[name] = max(out.get(name, 0.0), float(value))
    durations = [float(c["duration_s"]) for c in tool_calls if c.get("duration_s") is not None]
    if durations:
        out["tool_call"] = max(durations)
    return out


def turn_results(record: CallRecord) -> list[TurnResult]:
    """The call's events sorted into the scenario's turns (no checks yet)."""
    tracker, results = record.tracker, []
    for rec, start, end in _windows(record):
        ids = sorted(i for i, t in tracker.started.items() if start <= t < end)
        completed = [tracker.completed[i] for i in ids if i in tracker.completed]
        calls = [{k: getattr(c, k) for k in _TOOL_FIELDS} for (tid, _), c in tracker.tool_calls.items() if tid in ids]
        stop = rec.ended_at or end
        spoke = any(
            start <= t <= stop
            and ((isinstance(e, AgentSpeakingChanged) and e.speaking) or isinstance(e, AgentTextDelta | TurnStarted))
            for t, e in record.events
        )
        results.append(
            TurnResult(
                turn=rec.turn,
                start_s=round(start - record.started_at, 3),
                end_s=round(rec.ended_at - record.started_at, 3) if rec.ended_at else None,
                platform_turns=ids,
                user_text=" ".join(c.user_text for c in completed)
                or " ".join(tracker.user_text.get(i, "") for i in ids),
                agent_text=" ".join(c.agent_text for c in completed if c.agent_text),
                tool_calls=calls,
                metrics=_metrics(completed, calls),
                interrupted=any(c.interrupted for c in completed),
                previous_interrupted=None,
                agent_spoke=spoke,
                timed_out=rec.timed_out,
                note=rec.note,
            )
        )
    for before, after in itertools.pairwise(results):
        if after.turn.barge_in is not None:
            after.previous_interrupted = before.interrupted
            if "barge_in_delay" in before.metrics:
                after.metrics.setdefault("barge_in_delay", before.metrics["barge_in_delay"])
    return results
