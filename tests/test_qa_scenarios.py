"""QA scenario files, checks and reports without a call: the loader's errors, the audio conditions, the
expectations and the three reports, on results built here (no engines, no platform)."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from platform_core.cli.main import main
from platform_core.events import METRICS
from platform_core.qa.conditions import apply_conditions
from platform_core.qa.driver import CallRecord, TurnRecord
from platform_core.qa.expectations import args_match, check_turn
from platform_core.qa.loader import ScenarioError, find_scenario_files, load_scenario, scenario_schema
from platform_core.qa.reports import html_report, json_report, junit_report
from platform_core.qa.results import ScenarioResult, TurnResult
from platform_core.qa.runner import SuiteResult, select
from platform_core.qa.scenario import AudioConditions
from platform_core.resources import resource_path

SEED = resource_path("agents", "seed_agent.py")
EXAMPLES = resource_path("scenarios")


def write(tmp: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def test_the_example_suite_loads() -> None:
    scenarios = [load_scenario(p) for p in find_scenario_files([EXAMPLES])]
    assert len(scenarios) >= 5
    assert all(s.agent_file == SEED.resolve() and s.agent_id == "seed" for s in scenarios)
    kinds = {t.label.split()[0] for s in scenarios for t in s.turns}
    assert {"say", "text", "silence"} <= kinds
    assert any(t.barge_in for s in scenarios for t in s.turns)
    assert any(t.audio.snr_db is not None for s in scenarios for t in s.turns)


def test_the_issue_shape_loads(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "a.py").write_text('class A:\n    agent_id = "mine"\n')
    path = write(
        tmp_path,
        """
name: weather in Paris
agent: agents/a.py
turns:
  - say: "What's the weather in Paris?"
    expect:
      transcript_contains: [paris]
      tool: {name: get_weather, args: {location: Paris}}
      agent_says_any: [paris]
      max_latency_s: {e2e_latency: 3.0}
  - say: "Thanks, that's all."
    expect: {no_tool: true}
""",
    )
    s = load_scenario(path)
    assert s.agent_id == "mine" and s.agent_file == (tmp_path / "agents" / "a.py").resolve()
    first = s.turns[0].expect
    assert first.tools[0].name == "get_weather" and first.tools[0].args == {"location": "Paris"}
    assert first.max_latency_s == {"e2e_latency": 3.0} and s.turns[1].expect.no_tool
    assert s.turns[1].line == 11


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "name: x\nturns:\n  - say: hi\n    expect:\n      max_latency_s: {e2e: 3}\n",
            ":5: turns/0/expect/max_latency_s",
        ),
        ("name: x\nturns:\n  - say: hi\n    text: hi\n", ":3: turns/0: a turn needs exactly one of"),
        ("name: x\nturns:\n  - say: hi\n    expect: {tool: {name: t, argz: {}}}\n", ":4: turns/0/expect/tool"),
        ("name: x\nturns:\n  - say: 'a\n", ":4: not valid YAML"),
        ("name: x\nturns: []\n", ":2: turns"),
        ("turns:\n  - say: hi\n", ":1: (top level): 'name' is a required property"),
        ("name: x\nagent: nowhere.py\nturns:\n  - say: hi\n", ":2: agent: no such file"),
        ("name: x\nturns:\n  - say: hi\n  - say: ho\n    barge_in: {after: soon}\n", ":5: turns/1/barge_in/after"),
        ("name: x\nturns:\n  - say: hi\n    barge_in: {}\n", ":4: turns/0/barge_in: the first turn"),
        (
            "name: x\nturns:\n  - say: hi\n    expect: {agent_matches: '('}\n",
            ":4: turns/0/expect/agent_matches: not a regular",
        ),
        ("name: x\nagent_id: a\nsetup: {k: v}\nturns:\n  - say: hi\n", ":3: setup: values go to an agent"),
    ],
)
def test_a_bad_file_names_its_line_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(path) + where in caught.value.message
    assert caught.value.hint


def test_the_schema_names_every_metric() -> None:
    expect = scenario_schema()["$defs"]["expect"]["properties"]
    assert set(expect["max_latency_s"]["propertyNames"]["enum"]) == set(METRICS)


def test_bad_files_exit_2_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "name: a\nturns:\n  - sey: hi\n", "a.yaml")
    write(tmp_path, "name: b\nturns:\n  - say: hi\n    expect: {no_tool: maybe}\n", "b.yaml")
    assert main(["test", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "a.yaml:3" in err and "b.yaml:4" in err and "docs/qa.md" in err
    assert "Traceback" not in err
    assert main(["test", str(tmp_path / "missing.yaml")]) == 2
    assert main(["test", str(EXAMPLES), "-k", "no-such-scenario"]) == 2


def test_noise_is_added_at_the_asked_snr() -> None:
    rate = 16000
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 8000).astype(np.int16)
    for snr in (0.0, 10.0, 20.0):
        noisy = apply_conditions(tone, rate, AudioConditions(snr_db=snr, noise="white"))
        noise = noisy.astype(float) - tone
        measured = 10 * np.log10(np.mean(tone.astype(float) ** 2) / np.mean(noise**2))
        assert abs(measured - snr) < 0.5
    assert apply_conditions(tone, rate, AudioConditions(speed=2.0)).size == rate // 2
    assert np.abs(apply_conditions(tone, rate, AudioConditions(gain_db=-6.0))).max() == pytest.approx(4009, abs=20)
    phone = apply_conditions(tone * 0 + 8000, rate, AudioConditions(telephone=True))  # DC is outside 300-3400 Hz
    assert np.abs(phone).max() < 50


def test_arguments_match_as_a_case_insensitive_subset() -> None:
    assert args_match({"location": "paris"}, {"location": "Paris", "unit": "c"})
    assert args_match({"id": 42}, {"id": "42"})
    assert not args_match({"location": "Paris"}, {"location": "London"})
    assert not args_match({"date": "2026-01-01"}, {})


def _result(tmp_path: Path, *, tool: str = "get_weather", said: str = "It is sunny in Paris.") -> ScenarioResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write(
        tmp_path,
        """
name: weather
turns:
  - say: "Weather in Paris?"
    expect:
      tool: {name: get_weather, args: {location: paris}}
      agent_says_any: [paris]
      max_latency_s: {e2e_latency: 2.0}
  - say: "Thanks."
    expect: {no_tool: true, agent_matches: "welcome|bye"}
""",
    )
    scenario = load_scenario(path)
    record = CallRecord(scenario, started_at=time.monotonic(), conversation_id="conv_x", duration_s=9.5)
    record.turns = [TurnRecord(t, started_at=record.started_at + i) for i, t in enumerate(scenario.turns)]
    calls = [{"name": tool, "arguments": {"location": "Paris"}, "status": "done", "result": {"t": 21}}]
    turns = [
        TurnResult(
            scenario.turns[0],
            0.1,
            4.0,
            [1],
            "Weather in Paris?",
            said,
            calls,
            {"e2e_latency": 2.5},
            False,
            None,
            True,
            False,
        ),
        TurnResult(
            scenario.turns[1],
            4.0,
            8.0,
            [2],
            "Thanks.",
            "You're welcome!",
            [],
            {"e2e_latency": 1.0},
            False,
            None,
            True,
            False,
        ),
    ]
    for t in turns:
        t.failures = check_turn(t)
    return ScenarioResult(scenario, 1, record, turns, folder=tmp_path / "rec")


def test_each_miss_says_what_happened_instead(tmp_path: Path) -> None:
    result = _result(tmp_path, tool="get_time", said="I do not know.")
    first, second = result.turns
    assert [f.expectation for f in first.failures] == ["agent_says_any", "tool", "max_latency_s.e2e_latency"]
    assert "get_time" in str(first.failures[1]) and "2.500 s" in str(first.failures[2])
    assert second.passed and not result.passed
    assert result.first_problem.startswith("turn 1 (say 'Weather in Paris?'): agent_says_any")


def test_reports_say_which_turn_failed(tmp_path: Path) -> None:
    good, bad = _result(tmp_path / "a"), _result(tmp_path / "b", tool="get_time")
    good.turns[0].metrics["e2e_latency"] = 1.5
    good.turns[0].failures = check_turn(good.turns[0])
    assert good.passed and not bad.passed
    suite = SuiteResult([good, bad], duration_s=20.0, target="embedded")
    junit = ET.fromstring(junit_report(suite))
    assert junit.get("tests") == "2" and junit.get("failures") == "1"
    failure = junit.find(".//failure")
    assert failure is not None and "turn 1" in failure.get("message", "") and "tool" in failure.get("message", "")
    data = json_report(suite, tmp_path)
    assert data["failed_runs"] == 1 and data["results"][1]["turns"][0]["failures"][0]["expectation"] == "tool"
    assert data["results"][0]["recordings"]["agent"] == "a/rec/agent.wav"
    json.dumps(data)
    page = html_report(suite, tmp_path)
    assert "FAILED" in page and "1 of 2 scenario run(s) passed" in page and 'src="a/rec/caller.wav"' in page
    assert "<script" not in page and "http" not in page.split("</style>")[1]  # self-contained


def test_select_by_keyword() -> None:
    scenarios = [load_scenario(p) for p in find_scenario_files([EXAMPLES])]
    chosen = select(scenarios, "barge, noisy")
    assert {s.path.stem for s in chosen} == {"barge_in", "noisy"}
