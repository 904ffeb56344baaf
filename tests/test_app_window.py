"""The main window's methods the controller drives it with, and the space bar as push-to-talk
(offscreen Qt, no platform: the window alone shows state and emits intents)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from app.viewmodels.session import SessionModel


@pytest.fixture
def window(qtbot):  # type: ignore[no-untyped-def]
    made = MainWindow(SessionModel(), defer_panels=True)
    qtbot.addWidget(made)
    made.show()
    return made


def test_the_options_read_back_what_the_user_ticked(window: MainWindow) -> None:
    assert not window.push_to_talk() and not window.muted()
    window.set_push_to_talk(True)
    window.mute_box.click()
    assert window.push_to_talk() and window.muted()
    assert window.talk_button.isEnabled()  # push-to-talk on: the talk button is live


def test_status_texts(window: MainWindow, tmp_path: Path) -> None:
    window.set_platform_starting()
    assert window.engine_label.text() == "Starting the platform…"
    window.set_platform_down("The platform is not running")
    assert window.engine_label.text() == "The platform is not running" and window.progress.isHidden()
    window.show_conversation_state("thinking")
    assert window.call_label.text() == "call: thinking"
    window.show_status("Agent acme connected", 5000)
    assert window.statusBar().currentMessage() == "Agent acme connected"
    window.set_conversations_dir(tmp_path)
    assert window.conversations_dir == tmp_path


def test_space_talks_only_with_push_to_talk_on(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    talking: list[bool] = []
    window.talk_pressed.connect(talking.append)
    qtbot.keyPress(window, Qt.Key.Key_Space)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert talking == []  # the option is off: space is an ordinary key
    window.set_push_to_talk(True)
    qtbot.keyPress(window, Qt.Key.Key_Space)
    qtbot.keyRelease(window, Qt.Key.Key_Space)
    assert talking == [True, False]


def test_the_api_key_is_shown_and_copied(window: MainWindow) -> None:
    from PySide6.QtWidgets import QApplication

    assert window.copy_key_button.isHidden()  # no platform yet: no key to copy
    window.set_api_key("k3y-shown-in-the-status-bar")
    assert "k3y-shown-in-the-status-bar" in window.key_label.text() and not window.copy_key_button.isHidden()
    window.copy_key_button.click()
    assert QApplication.clipboard().text() == "k3y-shown-in-the-status-bar"
