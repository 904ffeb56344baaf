"""Saving a conversation, reopening it in the app, exporting metrics; settings persistence."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from app.app_settings import AppSettings, load_app_settings, save_app_settings
from app.recording import ConversationRecorder, RecordingError, load_conversation, metrics_csv
from app.review_window import ReviewWindow
from app.settings_dialog import SettingsDialog
from platform_core.config import PlatformConfig, load_settings, save_settings
from platform_core.events import (
    AudioLevel,
    MetricMeasured,
    ToolCallUpdated,
    ToolsRegistered,
    TranscriptFinal,
    TurnCompleted,
    TurnStarted,
)

CID = "conv-9"


def record_one_turn(root: Path) -> Path:
    rec = ConversationRecorder(root, agent_id="acme", input_name="test")
    rec.meta["conversation_id"] = CID
    tone = (np.sin(np.arange(960) / 5) * 5000).astype(np.int16)
    for i in range(50):
        rec.on_caller_audio(tone, 100 + i * 0.02)
        rec.on_agent_audio(tone // 2, 100.1 + i * 0.02)
        rec.on_event(AudioLevel(conversation_id=CID, source="caller", rms_dbfs=-20, peak=0.2, t=100 + i * 0.02))
    rec.on_event(AudioLevel(conversation_id="other", source="caller", rms_dbfs=-20, peak=0.2))  # not ours
    rec.on_event(TurnStarted(conversation_id=CID, turn_id=1, speech_ended_at=100.5))
    rec.on_event(TranscriptFinal(conversation_id=CID, turn_id=1, text="book a table"))
    rec.on_event(
        ToolCallUpdated(
            conversation_id=CID,
            turn_id=1,
            call_id="c1",
            name="book",
            arguments={"n": 2},
            status="done",
            result={"ok": True},
            duration_s=0.2,
        )
    )
    rec.on_event(ToolsRegistered(customer_id="acme", conversation_id=CID, connection_id="x", tools=({"name": "book"},)))
    rec.on_event(MetricMeasured(conversation_id=CID, turn_id=1, name="tool_call", value=0.2))
    rec.on_event(MetricMeasured(conversation_id=CID, turn_id=1, name="mouth_to_ear", value=1.5))
    rec.on_event(
        TurnCompleted(
            conversation_id=CID,
            turn_id=1,
            user_text="book a table",
            agent_text="Done.",
            interrupted=False,
            metrics={"e2e_latency": 1.2, "end_of_turn_delay": 0.3, "llm_ttft": None},
        )
    )
    return rec.close()


def test_recording_round_trip(tmp_path: Path) -> None:
    folder = record_one_turn(tmp_path)
    assert {p.name for p in folder.iterdir()} >= {
        "caller.wav",
        "agent.wav",
        "events.jsonl",
        "transcript.json",
        "metrics.json",
        "meta.json",
    }
    saved = load_conversation(folder)
    assert len(saved.caller_audio) == 50 * 960 and len(saved.agent_audio) == 50 * 960
    assert saved.meta["conversation_id"] == CID and saved.meta["caller_started_monotonic"] == 100
    assert len(saved.session.levels.caller) == 50  # the other conversation's level was not recorded
    turn = saved.session.latency.turns[1]
    assert turn.metrics == {"e2e_latency": 1.2, "end_of_turn_delay": 0.3, "mouth_to_ear": 1.5}
    assert saved.session.tool_calls.rows["c1"].result == {"ok": True}
    transcript = json.loads((folder / "transcript.json").read_text())
    assert transcript == [
        {"turn_id": 1, "role": "user", "text": "book a table", "interrupted": False},
        {"turn_id": 1, "role": "agent", "text": "Done.", "interrupted": False},
    ]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["summary"]["e2e_latency"]["p50"] == 1.2
    assert metrics["tool_calls"][0]["name"] == "book"


def test_crash_cut_recording_still_opens(tmp_path: Path) -> None:
    folder = record_one_turn(tmp_path)
    with open(folder / "events.jsonl", "a") as fh:
        fh.write('{"kind": "TurnStarted", "conversation_id": "co')  # the last line cut short
    (folder / "meta.json").unlink()
    saved = load_conversation(folder)
    assert saved.skipped_lines == 1 and 1 in saved.session.latency.turns


def test_not_a_recording_is_explained(tmp_path: Path) -> None:
    with pytest.raises(RecordingError) as err:
        load_conversation(tmp_path)
    assert "not a saved conversation" in err.value.message


def test_metrics_csv(tmp_path: Path) -> None:
    saved = load_conversation(record_one_turn(tmp_path))
    rows = list(csv.DictReader(io.StringIO(metrics_csv(saved.session.latency))))
    assert rows[0]["turn_id"] == "1" and rows[0]["e2e_latency"] == "1.2" and rows[0]["llm_ttft"] == ""
    assert rows[0]["tool_calls"] == "1" and rows[0]["mouth_to_ear"] == "1.5"


def test_reopened_conversation_shows_its_graphs(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    window = ReviewWindow(load_conversation(record_one_turn(tmp_path)))
    qtbot.addWidget(window)
    window.show()
    panels = window.panels
    qtbot.waitUntil(lambda: panels.latency.bar_heights()["endpointing"] == [0.3], timeout=2000)
    qtbot.waitUntil(lambda: panels.tool_calls.row_texts() != [], timeout=2000)
    assert panels.levels.frames >= 1
    x, _ = panels.levels.traces.curves["caller"]
    assert x[0] == 0 and x[-1] == pytest.approx(0.98)


def test_settings_dialog_edits_and_persists(tmp_path: Path, qtbot) -> None:  # type: ignore[no-untyped-def]
    config, app_settings = PlatformConfig(), AppSettings()
    dialog = SettingsDialog(config, app_settings, lambda rescan: (["vmic"], ["vspeaker"]))
    qtbot.addWidget(dialog)
    dialog.port.setValue(9100)
    dialog.endpoint_silence.setValue(0.6)
    dialog.turn_detection.setCurrentIndex(dialog.turn_detection.findData("smart-turn"))
    dialog.vad_threshold.setValue(0.35)
    assert dialog.interrupt_speech.value() == pytest.approx(0.6) and dialog.interrupt_words.value() == 0
    dialog.interrupt_speech.setValue(0.8)
    dialog.interrupt_words.setValue(2)
    dialog.resume_after.setValue(3.0)
    dialog.llm_model.setText("my-model")
    dialog.api_keys.setText("k1=acme, k2=globex")
    dialog.input_device.setCurrentText("vmic")
    dialog.push_to_talk.setChecked(True)
    dialog.take_turns.setChecked(False)
    dialog.remote_url.setText(" front.example:8770 ")
    dialog.remote_api_key.setText("cluster-key")
    assert dialog.stt_threads.text() == "auto"  # 0 is shown as auto, and kept
    assert config.server.port == 8765  # nothing changes before OK
    dialog.apply()
    save_settings(config, tmp_path / "settings.json")
    save_app_settings(app_settings, tmp_path / "app.json")
    again = load_settings(tmp_path / "settings.json")
    assert again.server.port == 9100 and again.voice.endpoint_silence_s == pytest.approx(0.6)
    assert again.voice.turn_detection == "smart-turn"
    assert again.voice.vad_threshold == pytest.approx(0.35) and again.engines.llm_model == "my-model"
    assert again.voice.interrupt_speech_s == pytest.approx(0.8) and again.voice.interrupt_min_words == 2
    assert again.voice.false_interruption_timeout_s == pytest.approx(3.0)
    assert again.server.customers() == {"k1": "acme", "k2": "globex"}
    assert again.engines.stt_threads == 0 and again.engines.take_turns is False
    assert load_app_settings(tmp_path / "app.json") == AppSettings(
        input_device="vmic", push_to_talk=True, remote_url="front.example:8770", remote_api_key="cluster-key"
    )


def test_echo_cancellation_saved_off_by_an_older_version_is_turned_on_once(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"input_device": "vmic", "echo_cancellation": False}))  # no settings_version
    old = load_app_settings(path)
    assert old.echo_cancellation is True and old.input_device == "vmic" and old.settings_version == 2
    old.echo_cancellation = False  # the user turns it off again (a headset): that choice is kept
    save_app_settings(old, path)
    assert load_app_settings(path).echo_cancellation is False


def test_damaged_app_settings_are_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="moved to"):
        load_app_settings(path)
    assert (tmp_path / "app.damaged.json").exists() and load_app_settings(path) == AppSettings()


def test_window_opens_within_3_s(tmp_path: Path) -> None:
    """The real console entry point, in a fresh process (interpreter and imports included)."""
    import subprocess
    import sys

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path)}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "app.main", "--quit-after-shown"], env=env, capture_output=True, text=True, timeout=30
    )
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    shown = float(out.stderr.split("window shown ")[1].split(" s")[0])
    print(f"window shown {shown:.2f} s after launch (process wall time {wall:.2f} s)")
    assert shown < 3.0
