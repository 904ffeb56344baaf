"""The app's panels follow one conversation at a time, in this process (offscreen Qt, real EventBus).

The platform the app hosts also serves QA runs and browsers, so its bus carries several conversations:
the panels show the app's own call, or else the conversation that started while none was live, each
one afresh. The last test runs a real QA suite from the app's QA window against a real platform (real
engines, the runner in its own process) and watches the transcript panel follow each scenario's call."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtWidgets import QApplication

from app.bridge import EventBridge
from app.main_window import MainWindow
from app.qa_window import QaWindow
from app.viewmodels.session import SessionModel
from platform_core import Platform, PlatformConfig
from platform_core.events import (
    AudioLevel,
    ConversationStateChanged,
    ToolCallUpdated,
    TranscriptFinal,
    TurnCompleted,
)


def state(cid: str, value: str) -> ConversationStateChanged:
    return ConversationStateChanged(conversation_id=cid, agent_id=None, state=value)  # type: ignore[arg-type]


def turn(session: SessionModel, cid: str, text: str, turn_id: int = 1) -> None:
    session.apply(TranscriptFinal(conversation_id=cid, turn_id=turn_id, text=text))
    session.apply(
        TurnCompleted(
            conversation_id=cid,
            turn_id=turn_id,
            user_text=text,
            agent_text=f"answer to {text}",
            interrupted=False,
            metrics={},
        )
    )


def test_a_conversation_that_starts_during_another_stays_out_of_the_panels() -> None:
    session = SessionModel()
    session.apply(state("a", "active"))
    turn(session, "a", "first question")
    session.apply(state("b", "connecting"))  # a QA call while the followed one is live
    turn(session, "b", "intruder")  # same turn id 1: it would have overwritten a's line
    session.apply(
        ToolCallUpdated(conversation_id="b", turn_id=1, call_id="x", name="t", arguments={}, status="started")
    )
    session.apply_levels([AudioLevel(conversation_id="b", source="caller", rms_dbfs=-20.0, peak=0.1)])
    assert session.conversation_id == "a"
    assert session.transcript.as_text() == "You: first question\nAgent: answer to first question"
    assert not session.tool_calls.rows and len(session.levels.caller) == 0
    assert list(session.latency.turns) == [1] and session.latency.turns[1].user_text == "first question"


def test_the_next_conversation_gets_fresh_panels_once_the_followed_one_ended() -> None:
    session = SessionModel()
    session.apply(state("a", "active"))
    turn(session, "a", "first question")
    session.apply(state("a", "ended"))
    session.apply(state("b", "connecting"))
    turn(session, "b", "second question")
    assert session.conversation_id == "b" and session.conversations_started == 2
    assert session.transcript.as_text() == "You: second question\nAgent: answer to second question"
    assert [t.user_text for t in session.latency.ordered()] == ["second question"]
    session.apply(state("a", "ended"))  # a late event of the old call changes nothing
    assert session.conversation_id == "b" and session.conversation_state == "connecting"


def test_the_apps_own_call_takes_the_panels_and_a_replay_follows_its_first_conversation() -> None:
    session = SessionModel()
    session.apply(state("qa", "active"))
    turn(session, "qa", "from the runner")
    session.follow("mine")  # the app's call connected while a QA call runs
    turn(session, "mine", "from the microphone")
    assert session.transcript.as_text() == "You: from the microphone\nAgent: answer to from the microphone"
    replay = SessionModel()  # a recording whose first event is not a state change
    turn(replay, "rec", "saved question")
    assert replay.conversation_id == "rec" and "saved question" in replay.transcript.as_text()


def write_suite(folder: Path, words: list[str]) -> Path:
    folder.mkdir()
    for i, word in enumerate(words):
        (folder / f"{i}-{word}.yaml").write_text(
            f"name: say {word}\nturns:\n  - text: Please say the word {word}, and nothing else.\n"
            f"    expect:\n      agent_says_any: [{word}]\n"
        )
    return folder


IN_OWN_PROCESS = "CONVERSIMPLE_FOLLOW_LIVE"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_panels_follow_each_call_of_a_qa_run_live(tmp_path: Path) -> None:
    # A fresh process, so what crashes there cannot take the suite down. It segfaulted once in
    # processEvents (a timer event for a freed Qt object): the watchdog's stack sampler let go of a
    # finished frame, and so freed its Qt locals, off the GUI thread (platform_core/watchdog.py).
    # PYTHONFAULTHANDLER: should the child crash, its Python stacks are in the failure message.
    env = {**os.environ, IN_OWN_PROCESS: "1", "QT_QPA_PLATFORM": "offscreen", "PYTHONFAULTHANDLER": "1"}
    test = f"{__file__}::test_live_panels_follow_the_qa_calls"
    command = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "t")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=380)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-5000:] + proc.stderr[-3000:]


@pytest.mark.skipif(os.environ.get(IN_OWN_PROCESS) != "1", reason="run in its own process by the test above")
async def test_live_panels_follow_the_qa_calls(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = PlatformConfig()
    config.server.port = 0
    config.server.api_key = "follow-test-key-0123456789"
    platform = Platform(config)
    await platform.start()
    session = SessionModel()
    bridge = EventBridge()
    bridge.attach(platform.bus)
    bridge.event_received.connect(session.apply)
    bridge.levels.connect(session.apply_levels)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    assert window.panels is not None
    panel = window.panels.transcript
    qa = QaWindow(platform.url, config.server.api_key, tmp_path / "reports")
    qtbot.addWidget(qa)
    qa.open_suite(write_suite(tmp_path / "suite", ["apple", "banana"]))
    shown: list[str] = []  # what the transcript panel showed, each time it changed
    try:
        qa.run()
        deadline = time.monotonic() + 240
        while qa.table.rowCount() < 2 and time.monotonic() < deadline:
            QApplication.processEvents()  # Qt's events (the runner's output, the bridge, the panels' timers)
            await asyncio.sleep(0.05)  # the platform's loop
            text = panel.view.toPlainText()
            if not shown or shown[-1] != text:
                shown.append(text)
    finally:
        bridge.detach()
        await platform.stop()
    assert qa.table.rowCount() == 2, qa.output.toPlainText()
    first = [t for t in shown if "word apple" in t]
    second = [t for t in shown if "word banana" in t]
    assert first and second, shown
    assert all("banana" not in t for t in first), first  # while the first call ran, only its words
    assert all("apple" not in t for t in second), second  # the second call's panels started afresh
    assert shown.index(first[0]) < shown.index(second[0])
    assert session.conversations_started == 2
