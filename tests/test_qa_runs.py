"""QA runs for real: `conversimple-platform test` starts the embedded platform (default engines), the seed
agent as its own process, and places real WebRTC calls with Piper speech (noise, barge-in included).

The example suite must pass; a scenario with a wrong expectation must fail with exit status 1, a JUnit
failure naming the turn, and an HTML report that says the same when headless Chromium renders it (its
screenshot is kept in artifacts/ for the issue).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.harness import RunningPlatform
from platform_core.resources import resource_path
from tests.platform_helpers import chromium

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
EXAMPLES = resource_path("scenarios", "seed")
SEED = resource_path("agents", "seed_agent.py")


def run_qa(*args: str, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "platform_core.cli.main", "test", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.timeout(600)  # five calls plus loading the engines, on a shared CPU
def test_the_example_suite_passes(tmp_path: Path) -> None:
    out = run_qa(str(EXAMPLES), "--report-dir", str(tmp_path / "reports"), "--junit", str(tmp_path / "ci.xml"))
    print(out.stdout)
    assert out.returncode == 0, f"the example suite failed:\n{out.stdout}\n{out.stderr[-3000:]}"
    suite = ET.parse(tmp_path / "ci.xml").getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) >= 5
    assert out.stdout.count("PASS ") >= 5
    recordings = sorted(p.name for p in (tmp_path / "reports").glob("*/agent.wav"))
    assert len(recordings) >= 5 and (tmp_path / "reports" / "report.html").is_file()


WRONG = """
name: wrong city expected
agent: {seed}
turns:
  - say: "What's the weather in Paris?"
    expect:
      tool: {{name: get_weather, args: {{location: Rome}}}}
      agent_says_any: [rome]
"""


@pytest.mark.timeout(400)
async def test_a_wrong_expectation_fails_and_every_report_says_where(tmp_path: Path) -> None:
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(WRONG.format(seed=SEED))
    reports = tmp_path / "reports"
    out = run_qa(str(scenario), "--report-dir", str(reports), timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr[-3000:]
    assert "FAIL  wrong city expected" in out.stdout
    assert f'{scenario}:5: turn 1 (say "What\'s the weather in Paris?"): tool: expected tool get_weather' in out.stdout

    failure = ET.parse(reports / "junit.xml").getroot().find(".//testcase/failure")
    assert failure is not None
    assert failure.get("message", "").startswith('turn 1 (say "What\'s the weather in Paris?"): ')
    assert "get_weather" in (failure.text or "") and "Rome" in (failure.text or "")

    async with chromium(
        (reports / "report.html").as_uri(), reports / "wrong-city-expected" / "caller.wav", tmp_path / "profile"
    ) as page:
        # The report's own body, not the blank page Chromium shows while it navigates to it.
        await page.wait_for("document.body !== null && document.body.innerText.includes('QA run')", 20)
        text = await page.evaluate("document.body.innerText")
        await page.screenshot(ARTIFACTS / "qa_report_failure.png")
    assert "FAILED: 0 of 1 scenario run(s) passed" in text
    assert "FAIL" in text and "wrong city expected" in text
    assert '✗ tool: expected tool get_weather with {"location": "Rome"}' in text
    assert 'get_weather({"location": "Paris"}) done' in text  # what happened instead, with the result
    assert "voice-to-voice" in text  # the latency bars


SET_UP_AGENT = '''
import os
from agent_sdk import Agent, tool


class SetUpAgent(Agent):
    agent_id = "set-up"

    @tool
    def get_weather(self, location: str) -> dict:
        """Get the current weather for a location."""
        return {"location": location, "temperature_c": 21, "condition": "sunny"}

    def on_conversation_started(self, conversation_id: str) -> None:
        print("setup clinic=" + os.environ.get("CONVERSIMPLE_SETUP_CLINIC", "?"), flush=True)
'''

SPOKEN_AND_TYPED = """
name: spoken and typed to a running platform
agent: agent.py
setup: {clinic: north}
turns:
  - say: "What's the weather in London?"    # tiny.en once heard "pairs" for Paris through this path
    expect:
      tool: {name: get_weather, args: {location: london}}
  - text: "Thank you."
    expect:
      no_tool: true
      judge: "the agent answers politely"
"""


def test_a_running_platform_is_tested_with_its_api_key(platform_server: RunningPlatform, tmp_path: Path) -> None:
    """`--url --api-key`: the agent file (with its setup values) joins the running platform's gateway,
    the caller's voice is synthesized here, and the judge is skipped with a note (that platform's LLM
    is not in this process)."""
    (tmp_path / "agent.py").write_text(SET_UP_AGENT)
    scenario = tmp_path / "remote.yaml"
    scenario.write_text(SPOKEN_AND_TYPED)
    reports = tmp_path / "reports"
    args = (str(scenario), "--report-dir", str(reports), "--url", platform_server.url)
    out = run_qa(*args, "--api-key", platform_server.api_key, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    result = json.loads((reports / "report.json").read_text())["results"][0]
    assert result["agent_id"] == "set-up"
    assert result["turns"][0]["tool_calls"][0]["name"] == "get_weather"
    assert result["turns"][1]["judge"].startswith("skipped")
    assert "setup clinic=north" in (reports / result["recordings"]["agent_log"]).read_text()
    assert run_qa(*args, "--api-key", "wrong-key", timeout=120).returncode == 1  # refused: the scenario fails
