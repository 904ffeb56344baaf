"""The caller side: CallClient, the WAV microphone, the hang-up rule and `conversimple-platform call`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.harness import API_KEY
from platform_core.calls import (
    CallTracker,
    format_report,
    percentile_summary,
    place_call,
    speech_segments_end,
)
from platform_core.cli.call import EXIT_CALL_FAILED, EXIT_OK, EXIT_TIMEOUT, exit_code
from platform_core.events import AgentSpeakingChanged, AgentTextDelta, ErrorOccurred, TurnCompleted, TurnStarted
from platform_core.transport.client import CallClient, CallError, call_ws_url
from platform_core.transport.wav_source import FRAME_SAMPLES, SAMPLE_RATE, PacedAudioTrack
from tests.platform_helpers import VENV_BIN, speak

QUESTION = "What is the weather like in Paris today?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- pure logic ---------------------------------------------------------------------------------


def test_call_ws_url() -> None:
    assert call_ws_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/call"
    assert call_ws_url("https://example.org/") == "wss://example.org/call"
    assert call_ws_url("127.0.0.1:8765") == "ws://127.0.0.1:8765/call"
    assert call_ws_url("ws://h:1/call") == "ws://h:1/call"
    with pytest.raises(ValueError, match="not a platform URL"):
        call_ws_url("ftp://h")


def test_tracker_waits_for_turns_agent_and_quiet() -> None:
    tracker = CallTracker(quiet_s=1.0)

    def settled(now: float, input_done_for: float | None) -> bool:
        return tracker.settled(now, input_done_for=input_done_for, input_tail_s=2.0, need_turn=False)

    assert not settled(100.0, None)  # input still playing
    tracker.on_event(TurnStarted(conversation_id="c", turn_id=1, speech_ended_at=9.5), 10.0)
    tracker.on_event(AgentSpeakingChanged(conversation_id="c", speaking=True), 11.0)
    assert not settled(20.0, 5.0)  # turn 1 open, agent speaking
    tracker.on_event(AgentSpeakingChanged(conversation_id="c", speaking=False), 12.0)
    tracker.on_event(AgentTextDelta(conversation_id="c", turn_id=1, text="Hello."), 12.05)  # text: no activity
    tracker.on_event(
        TurnCompleted(
            conversation_id="c", turn_id=1, user_text="hi", agent_text="Hello.", interrupted=False, metrics={}
        ),
        12.1,
    )
    assert not settled(12.5, 5.0)  # not quiet for 1 s yet
    assert not settled(13.5, 1.0)  # VAD tail not over
    assert settled(13.5, 5.0)


def test_tracker_typed_turn_needs_acknowledgement() -> None:
    tracker = CallTracker(quiet_s=0.5)
    tracker.last_activity = 0.0
    assert not tracker.settled(10.0, input_done_for=10.0, input_tail_s=0.0, need_turn=True)
    tracker.on_event(ErrorOccurred(where="llm", message="down"), 1.0)
    assert tracker.settled(10.0, input_done_for=10.0, input_tail_s=0.0, need_turn=True)


def test_speech_segments_and_percentiles() -> None:
    tone = (np.sin(np.arange(SAMPLE_RATE) * 2 * np.pi * 300 / SAMPLE_RATE) * 8000).astype(np.int16)
    gap = np.zeros(SAMPLE_RATE, np.int16)
    ends = speech_segments_end(np.concatenate([gap, tone, gap, tone, gap]))
    assert ends == pytest.approx([2.0, 4.0], abs=0.03)
    assert speech_segments_end(gap) == []
    assert percentile_summary([]) == {"count": 0, "p50": None, "p95": None}
    s = percentile_summary([0.1, 0.2, 0.3, 0.4, 1.0])
    assert s["count"] == 5 and s["p50"] == pytest.approx(0.3) and s["p95"] == pytest.approx(0.88)


async def test_paced_track_plays_in_real_time_then_silence() -> None:
    samples = np.full(FRAME_SAMPLES * 10 + 100, 1000, np.int16)  # 10.1 frames
    track = PacedAudioTrack(samples)
    start = time.monotonic()
    frames = [await track.recv() for _ in range(26)]
    elapsed = time.monotonic() - start
    # Paced: the 26th frame is due 25 x 20 ms after the first, never sooner. Later by at most a few
    # scheduler slices (this file runs beside real engines on a shared 2-core machine).
    assert 25 * 0.02 - 0.01 <= elapsed < 25 * 0.02 + 0.25
    assert all(f.sample_rate == SAMPLE_RATE and f.samples == FRAME_SAMPLES for f in frames)
    assert [f.pts for f in frames[:3]] == [0, 960, 1920]
    assert track.finished.is_set() and track.finished_at is not None
    assert frames[10].to_ndarray()[0, :100].min() == 1000 and frames[10].to_ndarray()[0, 100:].max() == 0
    assert frames[12].to_ndarray().max() == 0
    track.stop()


def test_format_report_is_short_and_readable() -> None:
    metrics = dict.fromkeys(("end_of_turn_delay", "e2e_latency"), 0.5)
    report = {
        "conversation_id": "c1",
        "status": "ok",
        "call_duration_s": 9.5,
        "ended_reason": "caller hung up",
        "turns": [
            {
                "turn_id": 1,
                "user_text": "hi",
                "agent_text": "hello",
                "interrupted": False,
                "tool_calls": [{"name": "get_weather", "status": "done"}],
                "metrics": metrics,
            }
        ],
        "summary": {"e2e_latency": percentile_summary([0.5])},
        "notes": [],
        "errors": [],
    }
    text = format_report(report)
    assert "get_weather:done" in text and "e2e_latency" in text and "0.500" in text


def test_call_exit_code_is_non_zero_when_the_call_failed() -> None:
    ok = {"status": "ok", "errors": []}
    assert exit_code(ok) == EXIT_OK
    assert exit_code({"status": "no_speech", "errors": []}) == EXIT_OK  # a silent input is not a failure
    assert exit_code({**ok, "errors": [{"where": "llm", "message": "down", "hint": ""}]}) == EXIT_CALL_FAILED
    assert exit_code({"status": "ended_by_platform", "errors": []}) == EXIT_CALL_FAILED
    assert exit_code({"status": "timeout", "errors": []}) == EXIT_TIMEOUT
    assert exit_code({"status": "turn_failed", "errors": []}) == EXIT_CALL_FAILED
    assert exit_code({"status": "not_answered", "errors": []}) == EXIT_CALL_FAILED


# --- failures before a call exists ----------------------------------------------------------------


def test_call_cli_exits_non_zero_without_a_platform() -> None:
    proc = subprocess.run(
        [
            str(VENV_BIN / "conversimple-platform"),
            "call",
            "--url",
            f"http://127.0.0.1:{_free_port()}",
            "--text",
            "hello",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CALL_FAILED, proc.stdout + proc.stderr
    assert "cannot reach the platform" in proc.stderr


async def test_unreachable_platform_is_a_clear_error() -> None:
    client = CallClient(f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(CallError, match=r"cannot reach the platform .*connection refused") as info:
        await client.connect()
    assert "conversimple-platform serve" in info.value.hint


async def test_a_server_without_call_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    port = _free_port()
    server = await asyncio.to_thread(
        subprocess.Popen,
        [str(VENV_BIN / "python"), "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        with pytest.raises(CallError, match=r"did not accept a call|does not speak"):
            await CallClient(f"http://127.0.0.1:{port}").connect()
    finally:
        server.terminate()
        server.wait(5)


# --- real calls to a real platform ----------------------------------------------------------------


@pytest.mark.slow
async def test_wrong_api_key_is_refused(platform_url: str) -> None:
    with pytest.raises(CallError, match="refused"):
        await CallClient(platform_url, api_key="not-the-key").connect()


@pytest.mark.slow
async def test_spoken_call_report_and_recording(platform_url: str, tmp_path: Path) -> None:
    question = speak(QUESTION, tmp_path / "question.wav", pad_before=0.5)
    out, report_path = tmp_path / "answer.wav", tmp_path / "report.json"
    report = await place_call(platform_url, None, question, None, out, report_path, api_key=API_KEY)

    assert report == json.loads(report_path.read_text())
    assert report["status"] == "ok", report["notes"]
    assert report["conversation_id"]
    assert len(report["turns"]) == 1
    turn = report["turns"][0]
    assert "weather" in turn["user_text"].lower() or "paris" in turn["user_text"].lower()
    assert turn["agent_text"].strip() and not turn["interrupted"]
    assert turn["metrics"]["e2e_latency"] is not None and 0 < turn["metrics"]["e2e_latency"] < 30
    assert turn["metrics"]["mouth_to_ear"] is not None
    assert report["summary"]["e2e_latency"]["count"] == 1
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48_000, 1, 2)
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert np.abs(audio).max() > 1000, "the recorded answer is silent"


@pytest.mark.slow
async def test_typed_turn_via_cli(platform_url: str, tmp_path: Path) -> None:
    report_path = tmp_path / "r.json"
    proc = await asyncio.to_thread(
        subprocess.run,
        [
            str(VENV_BIN / "conversimple-platform"),
            "call",
            "--url",
            platform_url,
            "--api-key",
            API_KEY,
            "--text",
            "Say hello in five words.",
            "--report",
            str(report_path),
            "--output",
            str(tmp_path / "o.wav"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_path.read_text())
    assert report["text"] and len(report["turns"]) == 1 and report["turns"][0]["agent_text"]
    assert "p50" in proc.stdout and report["conversation_id"] in proc.stdout
