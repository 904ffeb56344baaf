"""JUnit XML for CI: one testcase per scenario run, its failure naming the turn and the expectation."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from platform_core.qa.results import ScenarioResult
from platform_core.qa.runner import SuiteResult


def junit_report(suite: SuiteResult) -> str:
    failures = sum(not r.passed for r in suite.results)
    root = ET.Element(
        "testsuites", name="conversimple-qa", tests=str(len(suite.results)), failures=str(failures), errors="0"
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name="conversimple-qa",
        tests=str(len(suite.results)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{suite.duration_s:.3f}",
        timestamp=datetime.fromtimestamp(suite.started, UTC).isoformat(timespec="seconds"),
    )
    repeated = len(suite.results) > len(suite.tally())
    for r in suite.results:
        name = r.scenario.name + (f" [run {r.run}]" if repeated else "")
        case = ET.SubElement(
            ts,
            "testcase",
            classname=r.scenario.path.stem,
            name=name,
            time=f"{r.record.duration_s:.3f}",
            file=str(r.scenario.path),
        )
        if not r.passed:
            failure = ET.SubElement(case, "failure", message=r.first_problem, type="ExpectationFailed")
            failure.text = "\n".join(_details(r))
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(f"turn {t.turn.index}: caller {t.user_text!r} / agent {t.agent_text!r}" for t in r.turns)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _details(r: ScenarioResult) -> list[str]:
    lines = [f"{r.scenario.path}: {r.scenario.name}"]
    if r.error:
        lines.append(f"call: {r.error}")
    for t in r.turns:
        for f in t.failures:
            lines.append(f"turn {t.turn.index} (line {t.turn.line}, {t.turn.label}): {f}")
        if t.timed_out:
            lines.append(f"turn {t.turn.index} (line {t.turn.line}, {t.turn.label}): {t.note}")
    return lines
