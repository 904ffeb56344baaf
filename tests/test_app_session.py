"""The app's call session and session panels, in this process (offscreen Qt, real EventBus, real
PulseAudio virtual devices): push-to-talk, no microphone at call start, a WAV file as the microphone
(app/call_session.py), and what the levels, latency and transcript panels and the metrics export show."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtWidgets import QTableWidgetItem

from app.app_settings import AppSettings
from app.audio_io import GatedSource, MicrophoneTrack, list_devices
from app.bridge import EventBridge
from app.controller import AppController, Call
from app.main import parse_args
from app.main_window import MainWindow
from app.mouth_to_ear import MouthToEarMeter
from app.recording import ConversationRecorder
from app.viewmodels.session import SessionModel
from platform_core import WEBRTC_RATE, EventBus, PlatformConfig
from platform_core.audio_files import read_audio, write_wav
from platform_core.events import (
    AgentInterrupted,
    AgentPaused,
    AgentResumed,
    AgentSpeakingChanged,
    ErrorOccurred,
    MetricMeasured,
    ToolCallUpdated,
    TranscriptFinal,
    TranscriptPartial,
    TurnCommitted,
    TurnCompleted,
    TurnHeld,
    TurnStarted,
    VadStateChanged,
)
from tests.desktop_env import PulseEnv
from tests.test_app_audio_io import best_match, signal

CID = "conv-session"


class Desk:
    """The window, its session fed by a real bus through the bridge, and the controller acting on it."""

    def __init__(
        self,
        qtbot,
        *,
        app_settings: AppSettings | None = None,  # type: ignore[no-untyped-def]
        input_wav: Path | None = None,
    ) -> None:
        self.bus = EventBus()
        self.session = SessionModel()
        self.bridge = EventBridge()
        self.bridge.attach(self.bus)
        self.bridge.event_received.connect(self.session.apply)
        self.bridge.levels.connect(self.session.apply_levels)
        self.window = MainWindow(self.session)
        qtbot.addWidget(self.window)
        self.window.show()
        self.controller = AppController(
            self.window, self.session, self.bus, PlatformConfig(), app_settings or AppSettings(), input_wav=input_wav
        )
        assert self.window.panels is not None
        self.panels = self.window.panels

    def event_log(self) -> str:
        self.panels.event_log.refresh()
        return str(self.panels.event_log.view.toPlainText())


@pytest.fixture
def desk(qtbot):  # type: ignore[no-untyped-def]
    made = Desk(qtbot)
    yield made
    made.bridge.detach()


# --- 1. push-to-talk ------------------------------------------------------------------------------


async def test_push_to_talk_sends_silence_until_talk_is_held(pulse_env: PulseEnv, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    list_devices(rescan=True)
    reference = signal(3.0, seed=3)
    wav = write_wav(tmp_path / "ref.wav", reference)
    desk = Desk(qtbot)
    window, controller = desk.window, desk.controller
    track = MicrophoneTrack("vmic")
    # The call around the track, so the window's intents reach it through the controller as in a call.
    # Its client is never used on these paths (no platform is needed to gate the microphone).
    recorder = ConversationRecorder(tmp_path / "rec", input_name="vmic")
    controller.call = Call(None, track, None, recorder, MouthToEarMeter(lambda turn, value: None))
    window.ptt_box.setChecked(True)  # the user's option -> controller -> track
    assert track.push_to_talk and window.talk_button.isEnabled()
    player = None
    try:
        for _ in range(10):  # let the stream settle
            await track.recv()
        player = pulse_env.play_into_mic(wav)
        released = [(await track.recv()).to_ndarray().reshape(-1) for _ in range(40)]  # 0.8 s, talk released
        window.talk_button.pressed.emit()  # held (the button, or the space bar)
        held = [(await track.recv()).to_ndarray().reshape(-1) for _ in range(60)]  # 1.2 s
        window.talk_button.released.emit()
        released_again = [(await track.recv()).to_ndarray().reshape(-1) for _ in range(20)]  # the WAV still plays
    finally:
        if player is not None:
            pulse_env.stop_process(player)
        track.stop()
        controller.call = None
        recorder.close()
        desk.bridge.detach()
    assert all(not f.any() for f in released), "audio went out while talk was released"
    assert all(not f.any() for f in released_again), "audio went out after talk was let go"
    sent = np.concatenate(held)
    assert np.abs(sent).max() > 1000  # the microphone's audio, not silence
    # ...and it is what was played into the microphone: the held stretch is found inside the reference.
    assert best_match(reference, sent) > 0.8


# --- 2. no microphone at call start ---------------------------------------------------------------


async def test_a_missing_input_device_falls_back_to_text_with_a_notice(pulse_env: PulseEnv, qtbot) -> None:  # type: ignore[no-untyped-def]
    list_devices(rescan=True)
    desk = Desk(qtbot, app_settings=AppSettings(input_device="usb-headset-gone"))
    try:
        source = desk.controller.call_session.open_source()  # what start_call does first
        assert source is None  # the call goes on with typed turns (CallClient sends silence)
        notice = desk.window.notice_text()
        assert desk.window.notice.isVisible()
        assert "No microphone: text mode" in notice and "'usb-headset-gone' is not available" in notice
        assert "What to do: Pick another in Settings; available:" in notice and "vmic" in notice
        assert "text only (no microphone)" in desk.window.input_label.text()
        assert "No microphone: text mode" in desk.window.statusBar().currentMessage()
        # kept in the event log (the status bar forgets it after a few seconds)
        assert [e.where for e in desk.session.errors] == ["microphone"]
        assert "No microphone: text mode" in desk.event_log() and "Pick another in Settings" in desk.event_log()
    finally:
        desk.bridge.detach()


# --- 5. a WAV file standing in for the microphone --------------------------------------------------


def test_input_wav_argument_makes_the_call_use_the_wav(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    wav = write_wav(tmp_path / "question.wav", signal(0.5, seed=4)[::6], rate=8000)
    args = parse_args(["--input-wav", str(wav)])
    assert args.input_wav == wav
    # The microphone is configured too: the WAV wins.
    desk = Desk(qtbot, app_settings=AppSettings(input_device="vmic"), input_wav=args.input_wav)
    try:
        assert "WAV question.wav" in desk.window.input_label.text()
        source = desk.controller.call_session.open_source()
        assert isinstance(source, GatedSource) and source.path == wav
        # one second of lead-in, then the file at 48 kHz
        assert not source.samples[:WEBRTC_RATE].any()
        assert np.array_equal(source.samples[WEBRTC_RATE:], read_audio(wav))
        source.stop()
        # Back to the microphone from the menu: the next call's source follows, and the choice is kept.
        desk.window.input_wav_chosen.emit(None)
        assert desk.controller.input_wav is None and desk.controller.app_settings.input_wav == ""
        assert "microphone vmic" in desk.window.input_label.text()
    finally:
        desk.bridge.detach()


def test_input_wav_from_the_saved_settings(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    wav = write_wav(tmp_path / "saved.wav", signal(0.3, seed=5))
    desk = Desk(qtbot, app_settings=AppSettings(input_wav=str(wav)))
    try:
        source = desk.controller.call_session.open_source()
        assert isinstance(source, GatedSource) and source.path == wav
        assert "WAV saved.wav" in desk.window.input_label.text()
    finally:
        desk.bridge.detach()


# --- 4. what the panels draw ----------------------------------------------------------------------


def test_levels_panel_draws_vad_band_agent_band_and_turn_lines(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, levels = desk.bus, desk.panels.levels
    now = time.monotonic()
    bus.publish(VadStateChanged(conversation_id=CID, speaking=True, t=now - 4.0))
    bus.publish(VadStateChanged(conversation_id=CID, speaking=False, t=now - 3.0))
    bus.publish(TurnStarted(conversation_id=CID, turn_id=1, speech_ended_at=now - 3.0))
    bus.publish(AgentSpeakingChanged(conversation_id=CID, speaking=True, t=now - 2.0))  # still speaking
    bus.publish(VadStateChanged(conversation_id=CID, speaking=True, t=now - 1.5))
    bus.publish(VadStateChanged(conversation_id=CID, speaking=False, t=now - 1.0))
    bus.publish(TurnStarted(conversation_id=CID, turn_id=2, speech_ended_at=now - 1.0))
    bus.publish(TurnStarted(conversation_id=CID, turn_id=0, speech_ended_at=now - 60.0))  # scrolled out of view
    qtbot.waitUntil(lambda: len(desk.session.levels.turns) == 3, timeout=2000)
    levels.repaint_levels()
    drawn_at = time.monotonic()
    lag = drawn_at - now  # x = 0 is "now" at the repaint

    vad = levels.traces.bands["vad"]
    assert [(r.top(), r.bottom()) for r in vad] == [(-10.0, 0.0), (-10.0, 0.0)]  # the top band
    assert [r.left() for r in vad] == pytest.approx([-4.0 - lag, -1.5 - lag], abs=0.1)
    assert [r.width() for r in vad] == pytest.approx([1.0, 0.5])
    (agent,) = levels.traces.bands["agent"]
    assert (agent.top(), agent.bottom()) == (-20.0, -10.0)  # under the caller's band
    assert agent.left() == pytest.approx(-2.0 - lag, abs=0.1)
    assert agent.right() == pytest.approx(0.0, abs=0.1)  # an open segment reaches "now"

    shown = [line for line in levels.turn_lines if line.isVisible()]
    assert len(shown) == 2  # turn 0 is older than the 10 s window
    assert [line.value() for line in shown] == pytest.approx([-3.0 - lag, -1.0 - lag], abs=0.1)


def test_turn_lines_keep_their_labels_as_they_scroll(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    levels = desk.panels.levels
    now = time.monotonic()
    desk.bus.publish(TurnStarted(conversation_id=CID, turn_id=1, speech_ended_at=now - 3.0))
    desk.bus.publish(TurnStarted(conversation_id=CID, turn_id=2, speech_ended_at=now - 1.0))
    qtbot.waitUntil(lambda: len([line for line in levels.turn_lines if line.isVisible()]) == 2, timeout=2000)
    frames = levels.frames
    qtbot.waitUntil(lambda: levels.frames >= frames + 3, timeout=2000)  # the live view scrolled on
    shown = [line for line in levels.turn_lines if line.isVisible()]
    assert [line.label.toPlainText() for line in shown] == ["turn 1", "turn 2"]


def test_turn_taking_decisions_are_marked_where_they_happened(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    levels, now = desk.panels.levels, time.monotonic()
    for event in (
        TurnHeld(conversation_id=CID, probability=0.12, wait_s=3.0, model_s=0.02, speech_ended_at=now - 8, t=now - 8),
        TurnCommitted(conversation_id=CID, reason="complete", probability=0.9, held_s=1.1, t=now - 7),
        TurnCommitted(conversation_id=CID, reason="silence", probability=None, held_s=0.0, t=now - 6.5),  # no mark
        AgentPaused(conversation_id=CID, turn_id=1, t=now - 5),
        AgentResumed(conversation_id=CID, turn_id=1, paused_s=0.4, speech_s=0.2, reason="speech ended", t=now - 4.6),
        AgentPaused(conversation_id=CID, turn_id=1, t=now - 3),
        AgentInterrupted(conversation_id=CID, turn_id=1, speech_s=0.6, words=0, paused_s=0.6, t=now - 2.4),
        AgentPaused(conversation_id=CID, turn_id=0, t=now - 30),  # scrolled out of the 10 s window
    ):
        desk.bus.publish(event)
    qtbot.waitUntil(lambda: len(desk.session.levels.decisions) == 7, timeout=2000)
    levels.repaint_levels()
    lag = time.monotonic() - now
    shown = [line for line in levels.decision_marks if line.isVisible()]
    assert [line.label.format for line in shown] == [
        "held (p=0.12)",
        "committed: complete",
        "paused",
        "resumed (speech ended, 0.2 s speech)",
        "paused",
        "interrupted (0.6 s speech)",
    ]
    assert [line.value() for line in shown] == pytest.approx(
        [-8 - lag, -7 - lag, -5 - lag, -4.6 - lag, -3 - lag, -2.4 - lag], abs=0.1
    )
    desk.panels.event_log.refresh()
    assert "AgentResumed" in desk.panels.event_log.view.toPlainText()  # and in the event log


def test_latency_series_and_percentile_table(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, latency = desk.bus, desk.panels.latency
    e2e = {1: 1.0, 2: 2.0, 3: 4.0}
    for turn, value in e2e.items():
        if turn != 2:  # the desktop measured mouth-to-ear on turns 1 and 3 only
            bus.publish(MetricMeasured(conversation_id=CID, turn_id=turn, name="mouth_to_ear", value=value + 0.5))
        bus.publish(
            TurnCompleted(
                conversation_id=CID,
                turn_id=turn,
                user_text="q",
                agent_text="a",
                interrupted=False,
                metrics={"e2e_latency": value, "llm_ttft": None},
            )
        )
    qtbot.waitUntil(lambda: len(desk.session.latency.turns) == 3, timeout=2000)
    latency.refresh()

    x, y = latency.e2e_curve.getData()
    assert list(x) == [1, 2, 3] and list(y) == [1.0, 2.0, 4.0]
    x, y = latency.m2e_curve.getData()
    assert list(x) == [1, 3] and list(y) == [1.5, 4.5]

    table = latency.table

    def text(item: QTableWidgetItem | None) -> str:
        assert item is not None
        return item.text()

    def row(metric: str) -> list[str]:
        index = [text(table.verticalHeaderItem(r)) for r in range(table.rowCount())].index(metric)
        return [text(table.item(index, c)) for c in range(3)]

    assert [text(table.horizontalHeaderItem(c)) for c in range(3)] == ["n", "p50", "p95"]
    assert row("e2e_latency") == ["3", "2000 ms", "3800 ms"]  # p95 interpolated between 2 s and 4 s
    assert row("mouth_to_ear") == ["2", "3000 ms", "4350 ms"]
    assert row("llm_ttft") == ["0", "—", "—"]  # never measured
    assert "last 4500 ms, p50 3000 ms, p95 4350 ms" in latency.mouth_to_ear.text()


def _fragments(view) -> list[tuple[str, bool, str]]:  # type: ignore[no-untyped-def]
    """(text, italic, colour) of each run of text in the transcript's document."""
    out = []
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            fmt = fragment.charFormat()
            out.append((fragment.text(), fmt.fontItalic(), fmt.foreground().color().name()))
            it += 1
        block = block.next()
    return out


def test_partial_transcript_is_grey_italic_then_replaced_by_the_final_text(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, panel = desk.bus, desk.panels.transcript
    bus.publish(TranscriptPartial(conversation_id=CID, turn_id=1, text="book a tab"))
    qtbot.waitUntil(lambda: "book a tab" in panel.view.toPlainText(), timeout=2000)
    partial = [f for f in _fragments(panel.view) if "book a tab" in f[0]]
    assert partial == [("book a tab …", True, "#888888")]
    bus.publish(TranscriptPartial(conversation_id=CID, turn_id=1, text="book a table for"))
    qtbot.waitUntil(lambda: "book a table for" in panel.view.toPlainText(), timeout=2000)
    assert "book a tab …" not in panel.view.toPlainText()  # the newer partial replaced it

    bus.publish(TranscriptFinal(conversation_id=CID, turn_id=1, text="Book a table for two."))
    qtbot.waitUntil(lambda: "Book a table for two." in panel.view.toPlainText(), timeout=2000)
    assert panel.view.toPlainText().strip() == "You: Book a table for two."  # one line, the partial gone
    final = [f for f in _fragments(panel.view) if "Book a table" in f[0]]
    assert len(final) == 1 and final[0][1] is False and final[0][2] != "#888888"
    bus.publish(TranscriptPartial(conversation_id=CID, turn_id=1, text="late partial"))  # must not undo the final
    qtbot.wait(250)
    assert "late partial" not in panel.view.toPlainText()


def test_metrics_json_export_holds_turns_percentiles_and_tool_calls(desk: Desk, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus = desk.bus
    bus.publish(
        ToolCallUpdated(
            conversation_id=CID,
            turn_id=1,
            call_id="c1",
            name="get_weather",
            arguments={"city": "Paris"},
            status="done",
            result={"temp_c": 21},
            duration_s=0.25,
        )
    )
    bus.publish(MetricMeasured(conversation_id=CID, turn_id=1, name="tool_call", value=0.25))
    bus.publish(MetricMeasured(conversation_id=CID, turn_id=1, name="mouth_to_ear", value=1.5))
    bus.publish(
        TurnCompleted(
            conversation_id=CID,
            turn_id=1,
            user_text="Weather in Paris?",
            agent_text="21 degrees.",
            interrupted=False,
            metrics={"e2e_latency": 1.2, "end_of_turn_delay": 0.3, "llm_ttfs": 0.4, "llm_ttft": None},
        )
    )
    bus.publish(
        TurnCompleted(
            conversation_id=CID,
            turn_id=2,
            user_text="And tomorrow?",
            agent_text="Rain",
            interrupted=True,
            metrics={"e2e_latency": 0.8, "end_of_turn_delay": 0.3},
        )
    )
    qtbot.waitUntil(lambda: len(desk.session.latency.turns) == 2 and bool(desk.session.tool_calls.rows), timeout=2000)
    path = tmp_path / "metrics.json"
    desk.window.export_requested.emit(path, "json")  # File > Export metrics as JSON

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["unit"] == "seconds"
    first, second = data["turns"]
    assert first["turn_id"] == 1 and first["interrupted"] is False
    assert first["metrics"] == {"e2e_latency": 1.2, "end_of_turn_delay": 0.3, "llm_ttfs": 0.4, "mouth_to_ear": 1.5}
    assert first["tool_calls"] == [0.25] and first["user_text"] == "Weather in Paris?"
    assert first["agent_text"] == "21 degrees."
    assert first["stages"]["endpointing"] == 0.3 and first["stages"]["tools"] == 0.25
    assert first["stages"]["playout"] == pytest.approx(0.3)  # mouth-to-ear beyond the platform's e2e
    assert sum(first["stages"].values()) == pytest.approx(1.5)
    assert second["turn_id"] == 2 and second["interrupted"] is True and second["tool_calls"] == []
    summary = data["summary"]
    assert summary["e2e_latency"] == {"n": 2, "p50": pytest.approx(1.0), "p95": pytest.approx(1.18)}
    assert summary["llm_ttft"] == {"n": 0, "p50": None, "p95": None}
    assert summary["tool_call"]["n"] == 1
    (call,) = data["tool_calls"]
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
    assert call["result"] == {"temp_c": 21} and call["status"] == "done"
    assert f"Metrics exported to {path}" in desk.window.statusBar().currentMessage()


def test_metrics_export_to_an_unwritable_place_is_explained(desk: Desk, tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtWidgets import QMessageBox

    path = tmp_path / "no-such-folder" / "metrics.json"
    desk.window.export_requested.emit(path, "json")
    boxes = [w for w in desk.window.findChildren(QMessageBox) if w.isVisible()]
    assert boxes and "could not be written" in boxes[0].text() and str(path) in boxes[0].text()
    assert "What to do: Choose a folder you can write to." in boxes[0].text()
    assert not path.exists()


def test_engine_error_events_reach_the_event_log(desk: Desk, qtbot) -> None:  # type: ignore[no-untyped-def]
    # (The engines' own failure dialog is checked in tests/test_app_missing_model.py; this is the log line.)
    desk.bus.publish(ErrorOccurred(where="engines", message="Model 'x' needs llm-x", hint="Run: pip install llm-x"))
    qtbot.waitUntil(lambda: "Run: pip install llm-x" in desk.event_log(), timeout=2000)
