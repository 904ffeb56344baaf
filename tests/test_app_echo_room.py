"""The echo room: a laptop's speakers heard by its own microphone, in a real window on Xvfb.

A private PulseAudio as in test_app_e2e, plus one `module-loopback` that feeds the virtual speaker's
monitor back into the virtual microphone's feed at the coupling under test (-10 dB or 0 dB, set in dB on
the loopback's stream: PulseAudio's percentages are cubic, 30 % is about -31 dB). The caller's speech is
played into the same feed, so the app's microphone hears the caller and the agent's own voice mixed, as
on a laptop without a headset. Real engines, the seed agent in its own process, real WebRTC.

This file is also the app process's driver (`python -m tests.test_app_echo_room`); run it by hand with
`--no-aec` and more questions to count self-interruptions without the canceller (docs/desktop.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import desktop_env
from tests.desktop_env import PulseEnv
from tests.wer import SAME_UTTERANCE, word_error_rate

until = desktop_env.until

# In `make test` since 4 December. Before that they were gated: they passed alone and in one full run, then
# failed in the next (at -10 dB the third answer was cut by its own echo, ERLE down to 5 dB). A failing run
# keeps the canceller's trace (every 0.5 s) and PulseAudio's log in artifacts/ (docs/desktop.md).

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
QUESTIONS = [
    "What is the weather in Lisbon right now?",
    "And what is the weather in Paris?",
    "Can you look up customer forty two?",
]
LONG_QUESTION = "Tell me a long story about a brave knight and a dragon."
INTERRUPTION = "Stop. What is two plus two?"


# --- the room ---------------------------------------------------------------------------------------

# The loopback's own buffer. PulseAudio's default (200 ms, measured 204 ms and drifting) is no room's: sound
# crosses a laptop in about a millisecond. With it, the echo reached the canceller ~0.5 s late, the edge of
# AEC3's delay search (synthetic echo: 0.4 s cancelled, 0.6 s not), and one run in two failed.
LOOPBACK_MS = 30


def add_echo(pulse: PulseEnv, coupling_db: float) -> str:
    """Feed the speaker back into the microphone at `coupling_db`; returns the loopback's module index."""
    module = pulse._run(
        "pactl",
        "load-module",
        "module-loopback",
        "source=vspeaker.monitor",
        "sink=micfeed",
        "source_dont_move=1",
        f"latency_msec={LOOPBACK_MS}",
    ).strip()
    listing = pulse._run("pactl", "list", "sink-inputs")
    for block in listing.split("Sink Input #")[1:]:
        if re.search(rf"Owner Module: {module}\b", block):
            pulse._run("pactl", "set-sink-input-volume", block.split()[0], f"{coupling_db:.0f}dB")
            return module
    raise RuntimeError(f"the loopback (module {module}) has no stream:\n{listing}")


@pytest.fixture(scope="module")
def echo_pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseEnv]:
    """A private PulseAudio for this file (its loopback must not leak into the other desktop tests)."""
    pulse = desktop_env.start_pulse(tmp_path_factory.mktemp("echo-pulse"))
    try:
        yield pulse
    finally:
        pulse.close()


@pytest.fixture(params=[-10.0, 0.0], ids=["-10dB", "0dB"])
def echo_room(request: pytest.FixtureRequest, echo_pulse: PulseEnv) -> Iterator[tuple[PulseEnv, float]]:
    module = add_echo(echo_pulse, request.param)
    try:
        yield echo_pulse, request.param
    finally:
        echo_pulse._run("pactl", "unload-module", module)


def run_driver(pulse: PulseEnv, display: str, tmp_path: Path, *args: str) -> dict[str, Any]:
    result_path = tmp_path / "result.json"
    env = {
        **os.environ,
        **pulse.env,
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, "-m", "tests.test_app_echo_room", "--out", str(result_path), *args]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"app_echo_room_{args[0]}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    pulse_log = pulse.root / "pulse.log"
    if pulse_log.exists():  # the room's own timing: the loopback's underruns and latency changes
        (ARTIFACTS / f"app_echo_room_{args[0]}_pulse.log").write_text(pulse_log.read_text(errors="replace"))
    assert result_path.exists(), f"driver failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(result_path.read_text())
    print(json.dumps(result, indent=1))
    assert not result.get("failure"), result["failure"]
    return result


def _wavs(tmp_path: Path, texts: list[str], lead_s: float) -> list[str]:
    from tests.speech import speech_wav

    return [str(speech_wav(tmp_path, text, rate=48_000, lead_s=lead_s, tail_s=0.5)) for text in texts]


# --- the tests --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_spoken_conversation_in_the_echo_room_never_hears_the_agent(
    xvfb_display: str, echo_room: tuple[PulseEnv, float], tmp_path: Path
) -> None:
    pulse, coupling_db = echo_room
    result = run_driver(pulse, xvfb_display, tmp_path, "conversation", *_wavs(tmp_path, QUESTIONS, 1.0))
    turns = result["turns"]
    assert result["echo_status"].startswith("Echo cancellation: on"), result["echo_status"]
    assert [t["interrupted"] for t in turns] == [False] * len(QUESTIONS), turns  # no self-interruption
    assert len(turns) == len(QUESTIONS), turns  # no turn made of the agent's own words
    for said, turn in zip(QUESTIONS, turns, strict=True):
        assert word_error_rate([(said, turn["user"])]) <= SAME_UTTERANCE, (said, turn)
        assert turn["agent"], turn
    # The room is what it claims to be, and the canceller removed most of its echo.
    assert abs(result["coupling_db"] - coupling_db) < 4, result["coupling_db"]
    assert result["erle_db"] > 15, result["erle_db"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_speaking_over_the_agent_in_the_echo_room_still_interrupts_it(
    xvfb_display: str, echo_room: tuple[PulseEnv, float], tmp_path: Path
) -> None:
    pulse, _ = echo_room
    (first,), (second,) = _wavs(tmp_path, [LONG_QUESTION], 1.0), _wavs(tmp_path, [INTERRUPTION], 0.2)
    result = run_driver(pulse, xvfb_display, tmp_path, "barge-in", first, second)
    first_turn, second_turn = result["turns"][:2]
    assert first_turn["interrupted"], result["turns"]
    assert "two" in second_turn["user"].lower() or "2" in second_turn["user"], second_turn
    assert second_turn["agent"] and not second_turn["interrupted"], second_turn
    # From the caller's speech (its onset on the microphone after the canceller) to the speaker's silence.
    delay = result["speech_to_silence_s"]
    assert delay is not None and 0 < delay < 1.5, result
    print(f"barge-in in the echo room: {delay * 1000:.0f} ms to silence, platform {result['barge_in_delay_s']}")


# --- the driver (runs in the app's process) ----------------------------------------------------------


class Tap:
    """Per-block RMS of what the microphone sends (after the canceller) and what the speaker plays, with
    each block's device time (monotonic): the caller's speech onset and the speaker's silence come from it."""

    def __init__(self) -> None:
        self.mic: list[tuple[float, float]] = []
        self.speaker: list[tuple[float, float]] = []

    def attach(self, call: Any) -> None:
        call.source.on_frame.append(lambda s, t: self.mic.append((t, _rms(s))))
        call.speaker.on_played.append(lambda s, t: self.speaker.append((t, _rms(s))))

    def speech_to_silence(self, after: float) -> float | None:
        """From the first loud microphone block after `after` to the speaker's next 300 ms of silence."""
        onset = next((t for t, rms in self.mic if t > after and rms > 1000), None)
        if onset is None:
            return None
        quiet_since = None
        for t, rms in list(self.speaker):
            if t < onset:
                continue
            if rms > 30:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = t
            elif t - quiet_since >= 0.3:
                return quiet_since - onset
        return None


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _completed(session: Any) -> int:
    return len([t for t in session.latency.ordered() if t.completed])


def _agent_silent(session: Any) -> bool:
    return not any(segment.end is None for segment in session.levels.agent_speaking)


async def _play(wav: str) -> subprocess.Popen[bytes]:
    return await asyncio.to_thread(subprocess.Popen, ["paplay", "--device=micfeed", wav], stdin=subprocess.DEVNULL)


async def _conversation(studio: Any, wavs: list[str], *, tolerant: bool) -> None:
    """One question after another, each once the previous answer has been played out. `tolerant` (the room
    without a canceller, where the agent may answer its own echo for ever) goes on after a wait times out."""
    session = studio.session
    for n, wav in enumerate(wavs, start=1):
        player = await _play(wav)
        try:
            done = len([t for t in session.latency.ordered() if t.completed])
            await until(
                lambda d=done: len([t for t in session.latency.ordered() if t.completed]) > d, 120, f"answer {n}"
            )
            await asyncio.to_thread(player.wait, 20)
            await until(lambda: _agent_silent(session), 30 if tolerant else 60, f"answer {n} to be played")
        except TimeoutError:
            if not tolerant:
                raise
        await asyncio.sleep(1.5)
    await asyncio.sleep(3.0)  # a turn made of the last answer's echo would start here


async def _barge_in(studio: Any, first: str, second: str, tap: Tap, result: dict[str, Any]) -> None:
    session = studio.session
    player = await _play(first)
    await until(lambda: not _agent_silent(session), 90, "the agent's long answer")
    await asyncio.sleep(2.0)  # a little of the answer is heard (and echoed)
    await asyncio.to_thread(player.wait, 10)
    started = time.monotonic()
    player = await _play(second)

    def both_answered() -> bool:
        turns = session.latency.ordered()
        return len(turns) >= 2 and turns[0].completed and turns[1].completed

    await until(both_answered, 120, "the interrupted answer and the second one")
    await asyncio.to_thread(player.wait, 10)
    result["speech_to_silence_s"] = tap.speech_to_silence(started)
    result["barge_in_delay_s"] = session.latency.ordered()[0].metrics.get("barge_in_delay")


async def _trace_the_canceller(call: Any, trace: list[list[Any]]) -> None:
    """Every 0.5 s: [s since start, r, echo lag ms, engaged, ERLE dB, devices' delay ms]. A failing run
    shows where the echo path moved or the canceller lost it."""
    started = time.monotonic()
    while (canceller := call.echo_canceller) is not None:
        detector, erle = canceller.detector, canceller.erle_db
        r = detector.correlation
        trace.append(
            [
                round(time.monotonic() - started, 1),
                None if r is None else round(r, 2),
                detector.lag_ms,
                detector.engaged,
                None if erle is None else round(erle, 1),
                canceller.delay_ms,
            ]
        )
        await asyncio.sleep(0.5)


async def _scenario(studio: Any, args: argparse.Namespace, result: dict[str, Any]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    window, controller, session = studio.window, studio.controller, studio.session
    controller.app_settings.echo_cancellation = not args.no_aec
    await desktop_env.start_studio(studio)
    agent = desktop_env.start_seed_agent(controller) if args.mode == "conversation" else None
    try:
        if agent is not None:
            await until(lambda: window.agent_combo.findData("default") >= 0, 30, "the agent in the agent list")
            window.agent_combo.setCurrentIndex(window.agent_combo.findData("default"))
        QTest.mouseClick(window.call_button, Qt.MouseButton.LeftButton)
        await until(lambda: controller.call is not None and controller.call.conversation_id, 20, "the call")
        tap = Tap()
        tap.attach(controller.call)
        trace = asyncio.ensure_future(_trace_the_canceller(controller.call, result.setdefault("echo_trace", [])))
        await asyncio.sleep(1.0)
        try:
            if args.mode == "conversation":
                await _conversation(studio, args.wavs, tolerant=args.no_aec)
            else:
                await _barge_in(studio, args.wavs[0], args.wavs[1], tap, result)
        finally:
            trace.cancel()
        canceller = controller.call.echo_canceller
        result["echo_status"] = window.echo_label.text()
        result["erle_db"] = canceller.erle_db if canceller else None
        result["coupling_db"] = canceller.coupling_db if canceller else None
        result["delay_hint_ms"] = canceller.delay_ms if canceller else None
        result["turns"] = [
            {"user": t.user_text, "agent": t.agent_text, "interrupted": t.interrupted}
            for t in session.latency.ordered()
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        window.grab().save(str(ARTIFACTS / f"app_echo_room_{args.mode}.png"))
        QTest.mouseClick(window.hangup_button, Qt.MouseButton.LeftButton)
        await until(lambda: controller.call is None, 15, "the hang-up")
    finally:
        if agent is not None:
            agent.terminate()
            await asyncio.to_thread(agent.wait, 20)


MORE_QUESTIONS = [
    *QUESTIONS,
    "What is the weather in Berlin?",
    "Can you look up customer seven?",
    "What is the weather in Madrid today?",
    "How is the weather in Rome?",
    "What is the weather in London?",
    "Please look up customer forty two again.",
    "What is the weather in Tokyo?",
]


def count_in_the_room(argv: list[str]) -> int:
    """`python -m tests.test_app_echo_room room --coupling-db -10 [--no-aec]`: ten spoken turns in the
    echo room; prints the self-interruptions and the turns made of the agent's own voice."""
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--coupling-db", type=float, default=-10.0)
    parser.add_argument("--no-aec", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        display, xvfb = desktop_env.start_xvfb()
        pulse = desktop_env.start_pulse(root / "pulse")
        try:
            add_echo(pulse, args.coupling_db)
            flags = ["--no-aec"] if args.no_aec else []
            result = run_driver(pulse, display, root, "conversation", *_wavs(root, MORE_QUESTIONS, 1.0), *flags)
        finally:
            pulse.close()
            xvfb.terminate()
            xvfb.wait(10)
    turns = result["turns"]
    extra = len(turns) - len(MORE_QUESTIONS)
    said = {w for q in MORE_QUESTIONS for w in re.findall(r"[a-z0-9']+", q.lower())}
    echoed = [t["user"] for t in turns if t["user"] and not set(re.findall(r"[a-z0-9']+", t["user"].lower())) & said]
    summary = {
        "coupling_db": args.coupling_db,
        "aec": not args.no_aec,
        "questions": len(MORE_QUESTIONS),
        "turns": len(turns),
        "self_interruptions": sum(t["interrupted"] for t in turns),
        "extra_turns": max(extra, 0),
        "turns_with_none_of_the_callers_words": echoed,
        "erle_db": result.get("erle_db"),
        "measured_coupling_db": result.get("coupling_db"),
    }
    print(json.dumps(summary, indent=1))
    return 0


def driver(argv: list[str]) -> int:
    from app.main import build, parse_args

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["conversation", "barge-in"])
    parser.add_argument("wavs", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-aec", action="store_true", help="the room without the echo canceller")
    args = parser.parse_args(argv)
    studio = build(parse_args(["--port", "0"]))
    result: dict[str, Any] = {}
    return desktop_env.run_scenario(
        studio, lambda: _scenario(studio, args, result), result, args.out, ARTIFACTS / "app_echo_room_failure.png"
    )


if __name__ == "__main__":
    sys.exit(count_in_the_room(sys.argv[2:]) if sys.argv[1:2] == ["room"] else driver(sys.argv[1:]))
