"""Barge-in in the desktop app: the caller speaks over the agent's answer through the real microphone.

A real window on Xvfb with real virtual audio devices (PulseAudio), like test_app_e2e: the first
question asks for a long answer; while the agent's voice plays, a second utterance goes into the
virtual microphone. The answer must stop, be marked interrupted with only its played words kept,
and the second question must be answered. This file is also the app process's driver
(`python -m tests.test_app_barge_in`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import desktop_env
from tests.desktop_env import PulseEnv

until = desktop_env.until


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
LONG_QUESTION = "Tell me a long story about a brave knight and a dragon."
INTERRUPTION = "Stop. What is two plus two?"


@pytest.mark.slow
def test_speaking_over_the_agent_in_the_app_interrupts_it(
    xvfb_display: str, pulse_env: PulseEnv, tmp_path: Path
) -> None:
    from tests.speech import speech_wav

    first = speech_wav(tmp_path, LONG_QUESTION, rate=48_000, lead_s=2.0, tail_s=0.5)
    second = speech_wav(tmp_path, INTERRUPTION, rate=48_000, lead_s=0.2, tail_s=0.5)
    result_path = tmp_path / "result.json"
    env = {
        **os.environ,
        **pulse_env.env,
        "DISPLAY": xvfb_display,
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.test_app_barge_in",
            "--first",
            str(first),
            "--second",
            str(second),
            "--out",
            str(result_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "app_barge_in_driver.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert result_path.exists(), f"driver failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(result_path.read_text())
    print(json.dumps({k: v for k, v in result.items() if k != "transcript_html"}, indent=1))
    assert not result.get("failure"), result["failure"]

    first_turn, second_turn = result["turns"][:2]
    assert first_turn["interrupted"], result["turns"]
    # Only what was played before the caller spoke stays: a prefix of what was streamed to TTS. (On a slow
    # machine the caller may speak between two clauses, when all that was streamed so far has been played;
    # the rest of the answer is dropped all the same.)
    played, streamed = first_turn["agent"].split(), result["first_answer_streamed"].split()
    assert played and played == streamed[: len(played)], result
    assert "two" in second_turn["user"].lower() or "2" in second_turn["user"], second_turn
    assert second_turn["agent"] and not second_turn["interrupted"], second_turn
    assert "[interrupted]" in result["transcript_html"]
    # The echo canceller is on by default. These devices are isolated (a headset): it heard no echo and left
    # the microphone alone, so the caller was heard over the agent (before, AEC3 suppressed it here).
    assert result["echo_status"] == "Echo cancellation: on, no echo heard (microphone untouched)", result
    # The platform's figure for how fast the agent's audio stopped (the voice loop's target: 200 ms).
    delay = result["barge_in_delay_s"]
    assert delay is not None, f"the platform did not measure the interruption: {result}"
    assert 0 < delay < 1.0, result


# --- the driver (runs in the app's process) ----------------------------------------------------------


async def _scenario(studio: Any, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from platform_core.events import AgentTextDelta

    window, controller, session = studio.window, studio.controller, studio.session
    streamed: list[str] = []  # every clause of the first answer handed to TTS, played or not
    controller.bus.subscribe(
        lambda e: streamed.append(e.text) if isinstance(e, AgentTextDelta) and e.turn_id == 1 else None
    )
    await desktop_env.start_studio(studio)
    QTest.mouseClick(window.call_button, Qt.MouseButton.LeftButton)  # the plain assistant
    await until(lambda: controller.call is not None and controller.call.conversation_id, 20, "the call")
    await asyncio.sleep(1.0)
    first = await asyncio.to_thread(
        subprocess.Popen, ["paplay", "--device=micfeed", args.first], stdin=subprocess.DEVNULL
    )

    def agent_speaking() -> bool:
        return any(segment.end is None for segment in session.levels.agent_speaking)

    await until(agent_speaking, 90, "the agent's long answer")
    await asyncio.sleep(1.5)  # a little of the answer is heard
    await asyncio.to_thread(first.wait, 10)
    second = await asyncio.to_thread(
        subprocess.Popen, ["paplay", "--device=micfeed", args.second], stdin=subprocess.DEVNULL
    )

    def both_answered() -> bool:
        turns = session.latency.ordered()
        return len(turns) >= 2 and turns[0].completed and turns[1].completed

    await until(both_answered, 120, "the interrupted answer and the second one")
    await asyncio.to_thread(second.wait, 10)
    turns = session.latency.ordered()
    result["turns"] = [
        {"turn_id": t.turn_id, "user": t.user_text, "agent": t.agent_text, "interrupted": t.interrupted} for t in turns
    ]
    result["first_answer_streamed"] = " ".join(streamed)
    result["barge_in_delay_s"] = turns[0].metrics.get("barge_in_delay")  # None: not measured
    result["transcript_html"] = window.panels.transcript.view.toHtml()
    result["echo_status"] = window.echo_label.text()
    ARTIFACTS.mkdir(exist_ok=True)
    window.grab().save(str(ARTIFACTS / "app_barge_in_window.png"))
    QTest.mouseClick(window.hangup_button, Qt.MouseButton.LeftButton)
    await until(lambda: controller.call is None, 15, "the hang-up")


def driver(argv: list[str]) -> int:
    from app.main import build, parse_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--first", required=True)
    parser.add_argument("--second", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    studio = build(parse_args(["--port", "0"]))
    result: dict[str, Any] = {}
    return desktop_env.run_scenario(
        studio, lambda: _scenario(studio, args, result), result, args.out, ARTIFACTS / "app_barge_in_failure.png"
    )


if __name__ == "__main__":
    sys.exit(driver(sys.argv[1:]))
