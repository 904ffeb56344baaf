"""End to end, in a real window on Xvfb, with real virtual audio devices (PulseAudio).

Speech played into the virtual microphone reaches the app's sounddevice stream, goes over the
internal WebRTC peer to the embedded platform, the seed agent's tool is called, and the spoken
answer comes out on the virtual speaker. The app runs in its own process (a real xcb window needs
its own QApplication); this file is also that process's driver (`python -m tests.test_app_e2e`),
which clicks the real buttons, watches the view models, measures the loop, saves screenshots and
writes what it saw as JSON for the test to check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import desktop_env
from tests.desktop_env import PulseEnv

until = desktop_env.until


ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
QUESTION = "What is the weather in Lisbon right now?"


# --- the test -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_spoken_call_with_a_tool_in_a_real_window(xvfb_display: str, pulse_env: PulseEnv, tmp_path: Path) -> None:
    from tests.speech import speech_wav

    # Leading silence: a fresh PulseAudio stream can drop its first moments under load ("learn Lisbon").
    wav = speech_wav(tmp_path, QUESTION, rate=48_000, lead_s=2.0, tail_s=0.5)
    speaker_wav = tmp_path / "speaker.wav"
    recorder = pulse_env.record_speaker(speaker_wav)
    result_path = tmp_path / "result.json"
    env = {
        **os.environ,
        **pulse_env.env,
        "DISPLAY": xvfb_display,
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
    }
    port = _free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.test_app_e2e",
            "--wav",
            str(wav),
            "--port",
            str(port),
            "--out",
            str(result_path),
            "--display",
            xvfb_display,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    pulse_env.stop_process(recorder)
    (ARTIFACTS / "app_e2e_driver.log").parent.mkdir(exist_ok=True)
    (ARTIFACTS / "app_e2e_driver.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    assert result_path.exists(), f"driver failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(result_path.read_text())
    print(json.dumps({k: v for k, v in result.items() if k != "events"}, indent=1))
    assert not result.get("failure"), result["failure"]

    assert any(row[0] == "get_weather" and row[2] == "done" for row in result["tool_rows"]), result["tool_rows"]
    assert result["bar_total_s"] > 0.1  # the latency bars are drawn
    assert result["levels_fps"] >= 30
    assert (ARTIFACTS / "app_e2e_window.png").stat().st_size > 10_000
    assert (ARTIFACTS / "app_e2e_screen.png").stat().st_size > 10_000
    # The spoken answer came out of the virtual speaker.
    with wave.open(str(speaker_wav), "rb") as w:
        heard = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    frames = heard[: len(heard) // 960 * 960].reshape(-1, 960)
    voiced_s = float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) > 300)) * 0.02
    assert voiced_s > 0.5, f"only {voiced_s:.2f} s of agent voice on the speaker"
    assert result["recording_files"] and "agent.wav" in result["recording_files"]
    # GUI responsiveness: the 50 ms target is a benchmark figure (printed here, quoted in notes); the
    # test only catches engine work on the GUI thread, which stalls the loop for whole seconds.
    print(
        f"loop stalls during the call: worst {result['loop_worst_stall_s'] * 1000:.0f} ms, "
        f"p99 {result['loop_p99_stall_s'] * 1000:.0f} ms"
    )
    assert result["loop_worst_stall_s"] < 1.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the driver (runs in the app's process) ----------------------------------------------------------


class StallMeter:
    """How late a 5 ms timer wakes up on the app's (Qt + asyncio) loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.times: list[float] = []  # when each sample's sleep began (monotonic)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            self.samples.append(time.monotonic() - before - 0.005)
            self.times.append(before)

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
        s = np.array(self.samples or [0.0])
        return {
            "loop_worst_stall_s": float(s.max()),
            "loop_p99_stall_s": float(np.percentile(s, 99)),
            "loop_samples": len(s),
            "loop_worst_stall_began": self.times[int(s.argmax())] if self.times else 0.0,
        }


async def _scenario(studio: Any, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from platform_core.events import LoopStall
    from platform_core.watchdog import thread_cpu_account

    window, controller, session = studio.window, studio.controller, studio.session
    controller.app_settings.input_device = "vmic"
    controller.app_settings.output_device = "vspeaker"
    t0 = time.monotonic()
    window.show()
    window.build_panels()
    assert await controller.start_platform(), "the platform did not start"
    await until(lambda: controller.ready, 200, "engines to load")
    result["engines_ready_s"] = time.monotonic() - t0
    agent = desktop_env.start_seed_agent(controller)
    try:
        await until(lambda: window.agent_combo.findData("default") >= 0, 60, "the agent in the agent list")
        window.agent_combo.setCurrentIndex(window.agent_combo.findData("default"))
        meter = StallMeter()
        meter.start()
        stalls: list[dict[str, Any]] = []  # the platform watchdog's account: how long, and in what code
        unsubscribe = controller.bus.subscribe(
            lambda e: (
                stalls.append(
                    {
                        "ms": round(e.duration_s * 1000),
                        "where": e.where,
                        "at": time.monotonic(),
                        "on_cpu_ms": round((e.on_cpu_s or 0) * 1000),
                        "waiting_for_cpu_ms": round((e.waiting_for_cpu_s or 0) * 1000),
                    }
                )
                if isinstance(e, LoopStall)
                else None
            )
        )
        frames0, t_call, cpu0 = window.panels.levels.frames, time.monotonic(), thread_cpu_account()
        QTest.mouseClick(window.call_button, Qt.MouseButton.LeftButton)
        await until(lambda: controller.call is not None and controller.call.conversation_id, 20, "the call")
        await asyncio.sleep(1.5)
        player = await asyncio.to_thread(
            subprocess.Popen, ["paplay", "--device=micfeed", args.wav], stdin=subprocess.DEVNULL
        )

        def done() -> bool:
            turns = [t for t in session.latency.ordered() if t.completed]
            rows = session.tool_calls.ordered()
            return bool(turns and rows and all(r.finished for r in rows) and "mouth_to_ear" in turns[-1].metrics)

        try:
            await until(done, 180, "a completed turn with a tool call and mouth-to-ear")
        finally:
            await asyncio.sleep(1.0)  # let the panels repaint the final state
            result.update(meter.stop())
            result["call_started_at"] = t_call  # monotonic, like the stalls' and the recording's times
            result["loop_worst_stall_began"] = round(result["loop_worst_stall_began"] - t_call, 3)  # s into the call
            unsubscribe()
            result["loop_stalls"] = [{**s, "at": round(s["at"] - t_call, 2)} for s in stalls]  # s into the call
            result["levels_fps"] = (window.panels.levels.frames - frames0) / (time.monotonic() - t_call)
            if cpu0 is not None and (cpu1 := thread_cpu_account()) is not None:  # the loop (= GUI) thread's load
                result["loop_thread_cpu_share"] = round((cpu1[0] - cpu0[0]) / (time.monotonic() - t_call), 3)
            result["tool_rows"] = window.panels.tool_calls.row_texts()
            bars = window.panels.latency.bar_heights()
            result["bar_total_s"] = sum(sum(v) for v in bars.values())
            result["bars"] = bars
            result["turns"] = [
                {"turn_id": t.turn_id, "metrics": t.metrics, "user": t.user_text, "agent": t.agent_text}
                for t in session.latency.ordered()
            ]
            result["transcript"] = session.transcript.as_text()
            window.panels.tool_calls.table.selectRow(0)
            await asyncio.sleep(0.3)
            ARTIFACTS.mkdir(exist_ok=True)
            window.grab().save(str(ARTIFACTS / "app_e2e_window.png"))
            await asyncio.to_thread(desktop_env.screenshot_x, args.display, ARTIFACTS / "app_e2e_screen.png")
            await asyncio.to_thread(player.wait, 10)
        QTest.mouseClick(window.hangup_button, Qt.MouseButton.LeftButton)
        await until(lambda: controller.call is None, 15, "the hang-up")
        folder = controller.last_recording
        result["recording"] = str(folder)
        result["recording_files"] = sorted(await asyncio.to_thread(os.listdir, folder))
    finally:
        # Wait without blocking the loop: the agent's clean exit needs the gateway (on this loop) to
        # answer its websocket close.
        agent.terminate()
        await asyncio.to_thread(agent.wait, 20)


def driver(argv: list[str]) -> int:
    from app.main import build, parse_args

    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--display", required=True)
    args = parser.parse_args(argv)
    studio = build(parse_args(["--port", str(args.port)]))
    result: dict[str, Any] = {}

    return desktop_env.run_scenario(
        studio, lambda: _scenario(studio, args, result), result, args.out, ARTIFACTS / "app_e2e_failure.png"
    )


if __name__ == "__main__":
    sys.exit(driver(sys.argv[1:]))
