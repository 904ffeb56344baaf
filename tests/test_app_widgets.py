"""The main window and its panels, offscreen, fed by a real EventBus through the bridge."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from app.bridge import EventBridge
from app.main_window import MainWindow
from app.viewmodels.session import SessionModel
from platform_core.bus import EventBus
from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    AgentSpeakingChanged,
    AgentTextDelta,
    AudioLevel,
    ConversationStateChanged,
    EngineHealthChanged,
    EngineProgress,
    ErrorOccurred,
    MetricMeasured,
    ToolCallUpdated,
    ToolsRegistered,
    TranscriptFinal,
    TranscriptPartial,
    TurnCompleted,
    TurnStarted,
    VadStateChanged,
)

CID = "conv-1"


@pytest.fixture
def wired(qtbot):  # type: ignore[no-untyped-def]
    bus = EventBus()
    session = SessionModel()
    bridge = EventBridge()
    bridge.attach(bus)
    bridge.event_received.connect(session.apply)
    bridge.levels.connect(session.apply_levels)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    yield bus, session, bridge, window
    bridge.detach()


def publish_turn(bus: EventBus, turn_id: int = 1) -> None:
    now = time.monotonic()
    bus.publish(ConversationStateChanged(conversation_id=CID, agent_id="acme", state="active"))
    bus.publish(VadStateChanged(conversation_id=CID, speaking=True))
    bus.publish(TranscriptPartial(conversation_id=CID, turn_id=turn_id, text="what's the wea"))
    bus.publish(VadStateChanged(conversation_id=CID, speaking=False))
    bus.publish(TurnStarted(conversation_id=CID, turn_id=turn_id, speech_ended_at=now - 0.3))
    bus.publish(TranscriptFinal(conversation_id=CID, turn_id=turn_id, text="What's the weather in Paris?"))
    bus.publish(
        ToolCallUpdated(
            conversation_id=CID,
            turn_id=turn_id,
            call_id=f"c{turn_id}",
            name="get_weather",
            arguments={"city": "Paris"},
            status="started",
        )
    )


def test_events_reach_every_panel(wired, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, _session, _bridge, window = wired
    panels = window.panels
    bus.publish(AgentConnected(customer_id="acme", connection_id="conn-123456789", remote="127.0.0.1"))
    bus.publish(
        ToolsRegistered(
            customer_id="acme",
            conversation_id=CID,
            connection_id="conn-123456789",
            tools=({"name": "get_weather", "description": "Weather for a city"},),
        )
    )
    publish_turn(bus)
    qtbot.waitUntil(lambda: panels.tool_calls.row_texts() != [], timeout=2000)
    assert panels.tool_calls.row_texts()[0][:3] == ["get_weather", '{"city": "Paris"}', "started"]
    qtbot.waitUntil(lambda: "get_weather" in panels.agents.tool_names(), timeout=2000)
    qtbot.waitUntil(lambda: window.agent_combo.findData("acme") >= 0, timeout=2000)

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
    bus.publish(AgentSpeakingChanged(conversation_id=CID, speaking=True))
    bus.publish(AgentTextDelta(conversation_id=CID, turn_id=1, text="It is 21 degrees in Paris."))
    bus.publish(MetricMeasured(conversation_id=CID, turn_id=1, name="mouth_to_ear", value=1.4))
    metrics = {
        "end_of_turn_delay": 0.35,
        "transcription_delay": 0.5,
        "llm_ttft": 0.2,
        "llm_ttfs": 0.3,
        "tts_ttfb": 0.1,
        "e2e_latency": 1.2,
    }
    bus.publish(
        TurnCompleted(
            conversation_id=CID,
            turn_id=1,
            user_text="What's the weather in Paris?",
            agent_text="It is 21 degrees in Paris.",
            interrupted=False,
            metrics=metrics,
        )
    )
    qtbot.waitUntil(lambda: panels.tool_calls.row_texts()[0][2] == "done", timeout=2000)
    row = panels.tool_calls.row_texts()[0]
    assert row[3] == "250 ms" and row[4] == '{"temp_c": 21}'
    panels.tool_calls.table.selectRow(0)
    assert '"temp_c": 21' in panels.tool_calls.detail.toPlainText()

    qtbot.waitUntil(lambda: panels.latency.bar_heights()["endpointing"] == [0.35], timeout=2000)
    heights = panels.latency.bar_heights()
    assert heights["tools"] == [0.25]
    assert sum(h[0] for h in heights.values()) == pytest.approx(1.4)  # the stack adds up to mouth-to-ear
    assert "last 1400 ms" in panels.latency.mouth_to_ear.text()
    qtbot.waitUntil(lambda: "21 degrees" in panels.transcript.view.toPlainText(), timeout=2000)
    assert "What's the weather in Paris?" in panels.transcript.view.toPlainText()
    qtbot.waitUntil(lambda: "TurnCompleted" in panels.event_log.view.toPlainText(), timeout=2000)

    artifacts = Path(__file__).resolve().parents[1] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    window.grab().save(str(artifacts / "app_window_offscreen.png"))

    bus.publish(AgentDisconnected(customer_id="acme", connection_id="conn-123456789", reason="closed"))
    qtbot.waitUntil(lambda: window.agent_combo.findData("acme") < 0, timeout=2000)


def test_levels_are_coalesced_and_drawn_at_30_fps(wired, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, session, bridge, window = wired
    levels = window.panels.levels
    start_frames = levels.frames
    t0 = time.monotonic()
    published = 0
    # 50 blocks/s per source, like a real call, for one second.
    while time.monotonic() - t0 < 1.0:
        for source in ("caller", "agent"):
            bus.publish(AudioLevel(conversation_id=CID, source=source, rms_dbfs=-20.0, peak=0.3))  # type: ignore[arg-type]
            published += 1
        qtbot.wait(20)
    elapsed = time.monotonic() - t0
    bridge.flush_levels()
    fps = (levels.frames - start_frames) / elapsed
    print(f"level panel: {fps:.1f} frames/s, {published} levels in {bridge.level_batches} batches")
    assert fps >= 30
    assert len(session.levels.caller) + len(session.levels.agent) == published
    assert bridge.level_batches < published  # coalesced


def test_bridge_accepts_events_from_other_threads(wired, qtbot) -> None:  # type: ignore[no-untyped-def]
    _bus, session, bridge, _window = wired

    def worker() -> None:
        for i in range(100):
            bridge._on_event(AudioLevel(conversation_id=CID, source="caller", rms_dbfs=-30.0, peak=0.1))
            bridge._on_event(EngineProgress(component=f"c{i % 3}", message="loading", fraction=i / 100))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    qtbot.waitUntil(lambda: len(session.levels.caller) == 400 and session.log.total == 400, timeout=3000)


def test_engine_progress_and_errors_are_shown(wired, qtbot) -> None:  # type: ignore[no-untyped-def]
    bus, _session, _bridge, window = wired
    bus.publish(EngineProgress(component="stt", message="loading whisper-tiny.en", fraction=0.5))
    qtbot.waitUntil(lambda: "whisper" in window.engine_label.text(), timeout=2000)
    assert window.progress.value() == 50
    bus.publish(EngineProgress(component="stt", message="ready", fraction=1.0, done=True))
    qtbot.waitUntil(lambda: window.engine_label.text().startswith("Ready"), timeout=2000)
    bus.publish(ErrorOccurred(where="gateway", message="Agent acme disconnected", hint="Restart it"))
    qtbot.waitUntil(lambda: "Agent acme disconnected" in window.panels.event_log.view.toPlainText(), timeout=2000)
    # An engine that died shows as degraded, with the reason, until it is back.
    bus.publish(EngineHealthChanged(engine="llm", state="restarting", reason="llama.cpp exited: killed by signal 9"))
    qtbot.waitUntil(lambda: "signal 9" in window.health_label.text() and window.health_label.isVisible(), timeout=2000)
    assert window.health_label.text().startswith("Engine degraded: llm restarting")
    bus.publish(EngineHealthChanged(engine="llm", state="ok", restart_s=1.2))
    qtbot.waitUntil(lambda: not window.health_label.isVisible(), timeout=2000)


def test_buttons_emit_intents(wired, qtbot) -> None:  # type: ignore[no-untyped-def]
    _bus, _session, _bridge, window = wired
    with qtbot.waitSignal(window.call_requested) as call:
        window.call_button.click()
    assert call.args == [None, None]
    window.set_call_state("active")
    assert not window.call_button.isEnabled() and window.hangup_button.isEnabled()
    with qtbot.waitSignal(window.text_submitted) as typed:
        window.text_input.setText("hello there")
        window.text_input.returnPressed.emit()
    assert typed.args == ["hello there"]
    with qtbot.waitSignal(window.mute_changed) as muted:
        window.mute_box.setChecked(True)
    assert muted.args == [True]
    window.ptt_box.setChecked(True)
    assert window.talk_button.isEnabled()
    with qtbot.waitSignal(window.talk_pressed) as pressed:
        window.talk_button.pressed.emit()
    assert pressed.args == [True]


def test_new_latency_figures_do_not_resize_the_plots(qtbot) -> None:  # type: ignore[no-untyped-def]
    # A resize re-renders both plots at once on the event loop the platform shares (the GUI's worst
    # stall in a real call came from the mouth-to-ear line wrapping when the first figures arrived).
    from app.viewmodels.latency import LatencyModel
    from app.widgets.latency import LatencyPanel

    model = LatencyModel()
    panel = LatencyPanel(model)
    qtbot.addWidget(panel)
    panel.resize(1200, 300)
    panel.show()
    qtbot.waitExposed(panel)
    qtbot.wait(50)
    sizes = (panel.bars_plot.size(), panel.series_plot.size())
    for turn in (1, 2, 3):
        for name, value in (("end_of_turn_delay", 0.3), ("e2e_latency", 12.345 * turn), ("mouth_to_ear", 13.5 * turn)):
            model.add_metric(turn, name, value)
    panel.refresh()
    qtbot.wait(50)
    assert "last 40500 ms, p50 27000 ms, p95 39150 ms" in panel.mouth_to_ear.text()
    assert (panel.bars_plot.size(), panel.series_plot.size()) == sizes


def test_latency_percentiles_interpolate_like_numpy() -> None:
    from app.viewmodels.latency import percentile

    assert percentile([], 50) is None
    assert percentile([0.4], 95) == 0.4
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([3.0, 1.0, 2.0, 4.0, 10.0], 95) == pytest.approx(8.8)
