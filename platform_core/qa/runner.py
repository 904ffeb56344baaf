"""Running scenarios: each one a real call (its agent started for it), checked, recorded, `--repeat` times."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from platform_core.audio_files import write_wav
from platform_core.events import Event
from platform_core.qa.driver import CallRecord, ScenarioCall, one_line, prepare_audio
from platform_core.qa.expectations import check_turn
from platform_core.qa.judge import judge_turn
from platform_core.qa.results import ScenarioResult, turn_results
from platform_core.qa.scenario import Scenario
from platform_core.qa.targets import Target, start_agent, stop_agent


@dataclass
class SuiteResult:
    results: list[ScenarioResult] = field(default_factory=list)
    started: float = field(default_factory=time.time)  # wall clock, for reports
    duration_s: float = 0.0
    target: str = ""  # the platform's URL
    stopped: str | None = None  # why the run stopped before its end

    @property
    def passed(self) -> bool:
        return bool(self.results) and self.stopped is None and all(r.passed for r in self.results)

    def tally(self) -> dict[str, tuple[int, int]]:
        """Scenario id -> (runs passed, runs): with --repeat, a scenario that passed some runs is flaky."""
        out: dict[str, tuple[int, int]] = {}
        for r in self.results:
            passed, runs = out.get(r.scenario.id, (0, 0))
            out[r.scenario.id] = (passed + r.passed, runs + 1)
        return out


def select(scenarios: list[Scenario], keyword: str | None) -> list[Scenario]:
    """`-k WORDS`: the scenarios whose name or file name holds one of the comma-separated words."""
    if not keyword:
        return scenarios
    words = [w.strip().lower() for w in keyword.split(",") if w.strip()]
    return [s for s in scenarios if any(w in s.name.lower() or w in s.path.name.lower() for w in words)]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "scenario"


async def run_scenario(
    scenario: Scenario, target: Target, folder: Path, run: int = 1, on_event: Callable[[Event], None] | None = None
) -> ScenarioResult:
    """One scenario, start to verdict; its recordings and agent log go into `folder`."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    record = CallRecord(scenario, started_at=time.monotonic())
    agent = None
    try:
        if scenario.agent_file is not None:
            agent = await start_agent(target, scenario.agent_file, scenario.setup, folder / "agent.log")
        audio = [await prepare_audio(turn, target.voice) for turn in scenario.turns]  # before the call: CPU
        record = await ScenarioCall(scenario, target.url, target.api_key, on_event).run(audio)
    except Exception as exc:  # the agent or the caller's audio failed: the scenario failed, the run goes on
        record.error = one_line(exc)
    finally:
        if agent is not None:
            await stop_agent(agent, target)
    result = ScenarioResult(scenario, run, record, turn_results(record), folder=folder, error=record.error)
    for i, turn in enumerate(result.turns):
        turn.failures += check_turn(turn)
        await judge_turn(target.llm, turn, result.turns[:i])
    write_wav(folder / "caller.wav", record.caller_audio)
    write_wav(folder / "agent.wav", record.agent_audio)
    return result


async def run_suite(
    scenarios: list[Scenario],
    target: Target,
    folder: Path,
    *,
    repeat: int = 1,
    on_result: Callable[[ScenarioResult], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    suite: SuiteResult | None = None,
) -> SuiteResult:
    """Every scenario `repeat` times, one after another (the engines take one call at a time best).

    Results are added to `suite` (a new one unless given) as they come, so a run stopped half-way
    still reports what it did."""
    suite = suite if suite is not None else SuiteResult()
    suite.target = getattr(target, "url", "")
    started = time.monotonic()
    names: dict[str, int] = {}
    for scenario in scenarios:
        base = slug(scenario.name)
        names[base] = names.get(base, 0) + 1
        name = base if names[base] == 1 else f"{base}-{names[base]}"
        for run in range(1, repeat + 1):
            where = folder / (name if repeat == 1 else f"{name}-run{run}")
            result = await run_scenario(scenario, target, where, run, on_event)
            suite.results.append(result)
            suite.duration_s = time.monotonic() - started
            if on_result is not None:
                on_result(result)
    return suite
