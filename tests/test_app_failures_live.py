"""Failures in the middle of a live call, in a real window on Xvfb with real virtual audio devices.

- The only sound device (a headset: speaker and microphone) is unplugged mid-call: PulseAudio loses both
  devices and the app's sounddevice streams die, as with a real unplug.
- The agent's process is killed mid-call (a crash: no goodbye on its websocket).

In both the app must keep running, say what happened, why and what to do, go on with the call in text and
save it. Each case runs the real app in its own process; this file is also that process's driver
(`python -m tests.test_app_failures_live CASE ...`), which clicks and types in the real window and writes
what the user could see as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import desktop_env
from tests.desktop_env import PulseEnv
from tests.test_app_e2e import _free_port

until = desktop_env.until


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
TYPED = "Please say hello in five words."


def run_live(case: str, display: str, pulse: PulseEnv, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "seen.json"
    env = {
        **os.environ,
        **pulse.env,
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_app_failures_live", case, "--port", str(_free_port()), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"app_{case}_driver.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    # The app survived: its process finished the scenario and exited normally.
    assert proc.returncode == 0 and out.exists(), f"driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    seen: dict[str, Any] = json.loads(out.read_text())
    print(json.dumps({k: v for k, v in seen.items() if k != "event_log"}, indent=1))
    assert not seen.get("failure"), seen["failure"]
    return seen


def assert_call_went_on_and_was_saved(seen: dict[str, Any]) -> None:
    assert seen["call_alive_after_failure"]
    assert seen["typed_turn"]["user"] == TYPED and seen["typed_turn"]["agent"].strip(), seen["typed_turn"]
    assert seen["call_button_enabled_after_hangup"]  # ended cleanly: ready for the next call
    saved = seen["saved"]
    assert {"events.jsonl", "transcript.json", "meta.json"} <= set(saved["files"]), saved
    assert TYPED in saved["transcript"] and seen["typed_turn"]["agent"].strip()[:20] in saved["transcript"]


@pytest.mark.slow
def test_a_headset_unplugged_mid_call_is_explained_and_the_call_goes_on_in_text(
    xvfb_display: str, tmp_path: Path
) -> None:
    pulse = desktop_env.start_pulse(tmp_path / "pulse", headset=True)
    try:
        seen = run_live("unplug", xvfb_display, pulse, tmp_path)
    finally:
        pulse.close()
    assert seen["devices_alive_before"] == {"speaker": True, "microphone": True}
    print(
        f"noticed after the unplug: speaker {seen['noticed_s']['speaker']:.2f} s, "
        f"microphone {seen['noticed_s']['microphone']:.2f} s"
    )
    assert max(seen["noticed_s"].values()) < 3.0
    log = seen["event_log"]
    # What happened and why, and what to do, for each device, kept in the event log (the status bar only
    # holds the latest message for a few seconds).
    assert "Speaker lost" in log and "unplugged" in log and "Pick another speaker in Settings" in log
    assert "Microphone lost" in log and "type your turns in the text box" in log
    assert "text only (microphone lost)" in seen["input_label"]
    # and in view over the text box until the next call
    assert "Speaker lost" in seen["notice"] and "Microphone lost" in seen["notice"], seen["notice"]
    assert seen["notice"].count("What to do: ") == 2
    assert_call_went_on_and_was_saved(seen)
    assert {"speaker", "microphone"} <= set(seen["saved"]["errors"]), seen["saved"]["errors"]


@pytest.mark.slow
def test_an_agent_killed_mid_call_is_explained_and_the_call_goes_on(
    xvfb_display: str, pulse_env: PulseEnv, tmp_path: Path
) -> None:
    seen = run_live("agent", xvfb_display, pulse_env, tmp_path)
    assert seen["tool_before"] == [["get_weather", "done"]], seen  # the agent served this call before it died
    print(f"agent dropped from the panel {seen['dropped_s']:.2f} s after the kill")
    assert seen["dropped_s"] < 5.0
    assert seen["agents_panel"] == ["no agent connected"]
    assert seen["agent_choices"] == ["Plain assistant (no agent)"]
    log = seen["event_log"]
    assert "AgentDisconnected" in log
    assert "Agent disconnected" in log and "The call goes on without the agent's tools" in log
    assert "Restart the agent" in log
    assert "Agent disconnected" in seen["status"]
    assert "Agent disconnected" in seen["notice"] and "What to do: The call goes on" in seen["notice"]
    assert_call_went_on_and_was_saved(seen)
    assert "agent" in seen["saved"]["errors"]


# --- the driver (runs in the app's process) ----------------------------------------------------------


async def _start(studio: Any) -> None:
    await desktop_env.start_studio(studio)


async def _call(studio: Any) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    QTest.mouseClick(studio.window.call_button, Qt.MouseButton.LeftButton)
    await until(lambda: studio.controller.call is not None and studio.controller.call.conversation_id, 20, "the call")


async def _typed_turn(studio: Any, text: str) -> dict[str, str]:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    latency = studio.session.latency
    done = len([t for t in latency.ordered() if t.completed])
    studio.window.text_input.setText(text)
    QTest.keyClick(studio.window.text_input, Qt.Key.Key_Return)
    await until(lambda: len([t for t in latency.ordered() if t.completed]) > done, 120, f"an answer to {text!r}")
    turn = [t for t in latency.ordered() if t.completed][-1]
    return {"user": turn.user_text, "agent": turn.agent_text}


def _event_log(studio: Any) -> str:
    studio.window.panels.event_log.refresh()
    return str(studio.window.panels.event_log.view.toPlainText())


async def _hang_up_and_read_back(studio: Any, seen: dict[str, Any]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, controller = studio.window, studio.controller
    seen["call_alive_after_failure"] = controller.call is not None
    seen.setdefault("status", window.statusBar().currentMessage())
    seen["input_label"] = window.input_label.text()
    seen["notice"] = window.notice_text() if window.notice.isVisible() else ""
    seen["event_log"] = _event_log(studio)
    ARTIFACTS.mkdir(exist_ok=True)
    window.grab().save(str(ARTIFACTS / f"app_{seen['case']}_window.png"))
    QTest.mouseClick(window.hangup_button, Qt.MouseButton.LeftButton)
    await until(lambda: controller.call is None, 15, "the hang-up")
    seen["call_button_enabled_after_hangup"] = window.call_button.isEnabled()
    folder = Path(controller.last_recording)
    events = [json.loads(line) for line in (await asyncio.to_thread((folder / "events.jsonl").read_text)).splitlines()]
    seen["saved"] = {
        "files": sorted(await asyncio.to_thread(os.listdir, folder)),
        "transcript": await asyncio.to_thread((folder / "transcript.json").read_text),
        "errors": [e["where"] for e in events if e["kind"] == "ErrorOccurred"],
    }


async def _unplug(studio: Any, seen: dict[str, Any]) -> None:
    controller = studio.controller
    await _start(studio)
    await _call(studio)
    await asyncio.sleep(1.0)  # both streams running
    call = controller.call
    seen["devices_alive_before"] = {
        "speaker": call.speaker is not None and call.speaker.alive,
        "microphone": call.source is not None and call.source.failed is None,
    }
    t0 = time.monotonic()
    seen["unplugged"] = desktop_env.unplug(os.environ, "vspeaker", "vmic")
    noticed: dict[str, float] = {}

    def both_noticed() -> bool:
        for entry in studio.session.log.entries:
            where = entry.text.split(" ", 1)[0].removeprefix("where=")
            if entry.kind == "ErrorOccurred" and where in ("speaker", "microphone"):
                noticed.setdefault(where, time.monotonic() - t0)
        return len(noticed) == 2

    await until(both_noticed, 10, "the app to notice the lost speaker and microphone")
    seen["noticed_s"] = noticed
    seen["typed_turn"] = await _typed_turn(studio, TYPED)
    await _hang_up_and_read_back(studio, seen)


async def _agent(studio: Any, seen: dict[str, Any]) -> None:
    window, controller, session = studio.window, studio.controller, studio.session
    await _start(studio)
    agent = desktop_env.start_seed_agent(controller)
    try:
        await until(lambda: window.agent_combo.findData("default") >= 0, 30, "the agent in the agent list")
        window.agent_combo.setCurrentIndex(window.agent_combo.findData("default"))
        await _call(studio)
        # A turn typed before the agent registered its tools for the call would be answered without them.
        await until(lambda: any(a.tools for a in session.agents.agents.values()), 10, "the agent's tools")
        seen["turn_before"] = await _typed_turn(studio, "What is the weather in Lisbon?")
        seen["tool_before"] = [[r.name, r.status] for r in session.tool_calls.ordered()]
        t0 = time.monotonic()
        agent.kill()  # a crash: the socket closes without a websocket goodbye
        await asyncio.to_thread(agent.wait, 10)
        await until(lambda: not session.agents.agents, 10, "the agent to leave the agents model")
        panel = window.panels.agents
        await until(
            lambda: panel.tree.topLevelItemCount() == 1 and panel.tree.topLevelItem(0).text(0) == "no agent connected",
            5,
            "the agents panel to drop the agent",
        )
        seen["dropped_s"] = time.monotonic() - t0
        seen["agents_panel"] = [panel.tree.topLevelItem(i).text(0) for i in range(panel.tree.topLevelItemCount())]
        await asyncio.sleep(0.3)  # the combo follows on the window's status timer
        seen["agent_choices"] = [window.agent_combo.itemText(i) for i in range(window.agent_combo.count())]
        seen["status"] = window.statusBar().currentMessage()
        seen["typed_turn"] = await _typed_turn(studio, TYPED)
        await _hang_up_and_read_back(studio, seen)
    finally:
        if agent.poll() is None:
            agent.kill()
            await asyncio.to_thread(agent.wait, 10)


def driver(argv: list[str]) -> int:
    from app.main import build, parse_args

    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["unplug", "agent"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    studio = build(parse_args(["--port", str(args.port)]))
    seen: dict[str, Any] = {"case": args.case}
    scenario = {"unplug": _unplug, "agent": _agent}[args.case]

    def log_what_was_seen() -> None:
        seen.setdefault("event_log", _event_log(studio) if studio.window.panels else "")

    return desktop_env.run_scenario(
        studio,
        lambda: scenario(studio, seen),
        seen,
        args.out,
        ARTIFACTS / f"app_{args.case}_failure.png",
        log_what_was_seen,
    )


if __name__ == "__main__":
    sys.exit(driver(sys.argv[1:]))
