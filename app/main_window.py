"""The main window: call controls, the session panels, engine progress. It only shows state and
emits the user's intents as signals; `app.controller` acts on them."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from app.viewmodels.session import SessionModel

if TYPE_CHECKING:
    from app.widgets.panels import SessionPanels

PLAIN_ASSISTANT = "Plain assistant (no agent)"
TITLE = "Conversimple Studio"


class MainWindow(QMainWindow):
    # (customer id of a connected agent or None for the plain assistant, agent id or None)
    call_requested = Signal(object, object)
    hangup_requested = Signal()
    text_submitted = Signal(str)
    mute_changed = Signal(bool)
    push_to_talk_changed = Signal(bool)  # the option
    talk_pressed = Signal(bool)  # the push-to-talk button or space bar held / released
    open_requested = Signal(Path)
    export_requested = Signal(Path, str)  # path, "csv" | "json"
    input_wav_chosen = Signal(object)  # Path, or None to go back to the microphone
    qa_requested = Signal()  # open the QA window (app/qa_window.py)
    settings_requested = Signal()
    closing = Signal()

    def __init__(self, session: SessionModel, *, defer_panels: bool = False, parent: QWidget | None = None) -> None:
        """`defer_panels`: show the window first and build the plotting panels just after (pyqtgraph's
        import alone takes ~0.5 s), so the window is on screen well within 3 s of launch."""
        super().__init__(parent)
        self.session = session
        self.setWindowTitle(TITLE)
        self.resize(1440, 900)
        self.panels: SessionPanels | None = None
        self.setCentralWidget(QLabel("Loading the panels…", alignment=Qt.AlignmentFlag.AlignCenter))
        self._build_toolbar()
        self._build_text_box()
        if not defer_panels:
            self.build_panels()
        self._build_menus()
        self._build_status_bar()
        self.set_call_state("idle")
        self._agents_version = -1
        self._engines_failed: str | None = None
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(200)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start()

    # --- construction -------------------------------------------------------------------------

    def _build_toolbar(self) -> None:
        bar = QToolBar("Call")
        bar.setMovable(False)
        self.addToolBar(bar)
        bar.addWidget(QLabel(" Agent: "))
        self.agent_combo = QComboBox()
        self.agent_combo.setMinimumWidth(260)
        self.agent_combo.addItem(PLAIN_ASSISTANT, None)
        bar.addWidget(self.agent_combo)
        self.agent_id_edit = QLineEdit()
        self.agent_id_edit.setPlaceholderText("agent id (optional)")
        self.agent_id_edit.setToolTip("Which of the agent's classes answers (e.g. seed); empty: its only one")
        self.agent_id_edit.setMaximumWidth(150)
        bar.addWidget(self.agent_id_edit)
        self.call_button = QPushButton("Call")
        self.call_button.setObjectName("call")
        self.call_button.clicked.connect(
            lambda: self.call_requested.emit(self.agent_combo.currentData(), self.agent_id_edit.text().strip() or None)
        )
        self.hangup_button = QPushButton("Hang up")
        self.hangup_button.clicked.connect(self.hangup_requested.emit)
        self.mute_box = QCheckBox("Mute")
        self.mute_box.toggled.connect(self.mute_changed.emit)
        self.ptt_box = QCheckBox("Push to talk")
        self.ptt_box.toggled.connect(self._ptt_option_changed)
        self.talk_button = QPushButton("Hold to talk (space)")
        self.talk_button.pressed.connect(lambda: self.talk_pressed.emit(True))
        self.talk_button.released.connect(lambda: self.talk_pressed.emit(False))
        self.talk_button.setEnabled(False)
        for w in (self.call_button, self.hangup_button, self.mute_box, self.ptt_box, self.talk_button):
            bar.addWidget(w)
        self.input_label = QLabel("")
        bar.addSeparator()
        bar.addWidget(self.input_label)

    def build_panels(self) -> None:
        from app.widgets.panels import SessionPanels

        if self.panels is None:
            self.panels = SessionPanels(self.session, live=True)
            self.panels.transcript_layout.addWidget(self.notice)
            self.panels.transcript_layout.addWidget(self.text_row)
            self.setCentralWidget(self.panels)

    def _build_text_box(self) -> None:
        # Problems during a call, over the text box: the status bar holds one message for a few seconds,
        # and a dialog would block the window mid-call.
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setTextFormat(Qt.TextFormat.RichText)
        self.notice.setStyleSheet(
            "QLabel { background: #fff3cd; color: #5c4400; border: 1px solid #e0c060; padding: 4px; }"
        )
        self.notice.hide()
        self._notices: list[tuple[str, str, str]] = []  # (title, message, hint), the latest three
        self.text_row = row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        self.text_input = QLineEdit()
        self.text_input.setPlaceholderText("Type a turn instead of speaking, then Enter")
        self.text_input.returnPressed.connect(self._submit_text)
        send = QPushButton("Send")
        send.clicked.connect(self._submit_text)
        layout.addWidget(self.text_input)
        layout.addWidget(send)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open conversation…", self._open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Export metrics as &CSV…", lambda: self._export_dialog("csv"))
        self._action(file_menu, "Export metrics as &JSON…", lambda: self._export_dialog("json"))
        file_menu.addSeparator()
        self._action(file_menu, "Use a &WAV file as the microphone…", self._wav_dialog)
        self._action(file_menu, "Use the &microphone", lambda: self.input_wav_chosen.emit(None))
        file_menu.addSeparator()
        self._action(file_menu, "Run a Q&A suite…", self.qa_requested.emit)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        settings_menu = self.menuBar().addMenu("&Settings")
        self._action(settings_menu, "&Preferences…", self.settings_requested.emit)

    def _action(
        self, menu: QMenu, text: str, slot: Callable[[], object], shortcut: QKeySequence.StandardKey | None = None
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 0)
        self.engine_label = QLabel("Starting…")
        self.call_label = QLabel("")
        self.url_label = QLabel("")
        self.served_label = QLabel("")  # a remote call: the platform, or the cluster's worker, serving it
        self.served_label.hide()
        self.remote_label = QLabel("")  # the remote platform's or cluster's health (app/remote_health.py)
        self.remote_label.hide()
        # The API key agents and other callers need (the app's own calls use it too), with a copy button.
        self._api_key = ""
        self.key_label = QLabel("")
        self.key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_key_button = QPushButton("Copy key")
        self.copy_key_button.setToolTip("Copy the platform's API key (agents connect with --api-key KEY)")
        self.copy_key_button.clicked.connect(self._copy_api_key)
        self.copy_key_button.hide()
        self.health_label = QLabel("")  # an engine that died and is restarting, with the reason
        self.health_label.hide()
        self.echo_label = QLabel("")  # the echo canceller during a call: on/off and the echo it removes
        bar = self.statusBar()
        bar.addWidget(self.engine_label, 1)
        bar.addPermanentWidget(self.health_label)
        bar.addPermanentWidget(self.echo_label)
        bar.addPermanentWidget(self.call_label)
        bar.addPermanentWidget(self.served_label)
        bar.addPermanentWidget(self.remote_label)
        bar.addPermanentWidget(self.url_label)
        bar.addPermanentWidget(self.key_label)
        bar.addPermanentWidget(self.copy_key_button)
        bar.addPermanentWidget(self.progress)

    # --- user intents -------------------------------------------------------------------------

    def _submit_text(self) -> None:
        text = self.text_input.text().strip()
        if text:
            self.text_submitted.emit(text)
            self.text_input.clear()

    def _ptt_option_changed(self, enabled: bool) -> None:
        self.talk_button.setEnabled(enabled)
        self.push_to_talk_changed.emit(enabled)

    def _is_talk_key(self, event: QKeyEvent) -> bool:
        """The space bar, first press or release (not auto-repeat), while push-to-talk is on."""
        return self.ptt_box.isChecked() and event.key() == Qt.Key.Key_Space and not event.isAutoRepeat()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if self._is_talk_key(event):
            self.talk_pressed.emit(True)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if self._is_talk_key(event):
            self.talk_pressed.emit(False)
            return
        super().keyReleaseEvent(event)

    def _open_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a saved conversation", str(self.conversations_dir))
        if path:
            self.open_requested.emit(Path(path))

    def _export_dialog(self, fmt: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export metrics as {fmt.upper()}", f"metrics.{fmt}")
        if path:
            self.export_requested.emit(Path(path), fmt)

    def _wav_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "WAV file to use as the microphone", "", "WAV (*.wav)")
        if path:
            self.input_wav_chosen.emit(Path(path))

    conversations_dir: Path = Path.home()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)

    # --- state shown --------------------------------------------------------------------------

    def set_call_state(self, state: str) -> None:
        """ "idle" | "connecting" | "active" | "ending" | "unavailable" (platform not ready)."""
        self.call_button.setEnabled(state == "idle")
        self.agent_combo.setEnabled(state == "idle")
        self.hangup_button.setEnabled(state in ("connecting", "active"))
        self.call_label.setText({"idle": "", "unavailable": ""}.get(state, f"call: {state}"))

    def set_served_by(self, text: str) -> None:
        """Who serves the call when it went to another platform or a cluster ("" hides it)."""
        self.served_label.setText(f" {text} " if text else "")
        self.served_label.setVisible(bool(text))

    def set_remote_health(self, text: str, ok: bool) -> None:
        """The remote platform's or cluster's health ("" hides it); in red when it is not ok."""
        self.remote_label.setText(f" {text} " if text else "")
        self.remote_label.setStyleSheet("" if ok else "color: #b00020; font-weight: bold;")
        self.remote_label.setVisible(bool(text))

    def set_conversations_dir(self, folder: Path) -> None:
        """Where File > Open conversation starts browsing."""
        self.conversations_dir = folder

    def push_to_talk(self) -> bool:
        """The push-to-talk option: the microphone sends only while talk is held."""
        return self.ptt_box.isChecked()

    def set_push_to_talk(self, enabled: bool) -> None:
        self.ptt_box.setChecked(enabled)

    def muted(self) -> bool:
        return self.mute_box.isChecked()

    def show_status(self, message: str, timeout_ms: int) -> None:
        """A passing message in the status bar (the latest replaces the one before)."""
        self.statusBar().showMessage(message, timeout_ms)

    def show_conversation_state(self, state: str) -> None:
        """The running call's conversation state, as the platform reports it (listening, thinking, ...)."""
        self.call_label.setText(f"call: {state}")

    def set_platform_starting(self) -> None:
        self.engine_label.setText("Starting the platform…")

    def set_platform_down(self, text: str) -> None:
        """The platform is not running (not installed, or it could not start): `text` says so."""
        self.engine_label.setText(text)
        self.progress.hide()

    def set_echo_status(self, text: str) -> None:
        self.echo_label.setText(text)

    def set_input_source(self, text: str) -> None:
        self.input_label.setText(f" Input: {text} ")

    def set_platform_url(self, url: str) -> None:
        self.url_label.setText(f" agents connect to {url} ")

    def set_api_key(self, key: str) -> None:
        """Show the key agents need, and offer to copy it."""
        self._api_key = key
        self.key_label.setText(f" API key: {key} ")
        self.copy_key_button.setVisible(bool(key))

    def _copy_api_key(self) -> None:
        QApplication.clipboard().setText(self._api_key)
        self.statusBar().showMessage("API key copied to the clipboard", 3000)

    def show_failure(self, title: str, message: str, hint: str = "", *, modal: bool = True) -> None:
        """Say what happened, why, and what to do; never blocks a running call for long."""
        text = message + (f"\n\nWhat to do: {hint}" if hint else "")
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        if not modal:
            self._notices = [*self._notices[-2:], (title, message, hint)]
            self.notice.setText(
                "<br>".join(
                    f"<b>{html.escape(t)}</b>: {html.escape(m)}"
                    + (f" <i>What to do:</i> {html.escape(h)}" if h else "")
                    for t, m, h in self._notices
                )
            )
            self.notice.show()
        else:
            box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.WindowModal)
            box.open()  # non-blocking: the event loop (and any call) keeps running

    def clear_notices(self) -> None:
        self._notices = []
        self.notice.hide()

    def notice_text(self) -> str:
        """The notices shown, as plain text."""
        return "\n".join(f"{t}: {m}" + (f" What to do: {h}" if h else "") for t, m, h in self._notices)

    def set_engines_failed(self, text: str | None) -> None:
        """Engines that failed to load keep this status (not "Loading ...") until the platform restarts."""
        self._engines_failed = text
        if text is not None:
            self.engine_label.setText(text)
            self.progress.hide()

    def _refresh_health(self) -> None:
        problems = self.session.engine_problems()
        self.health_label.setVisible(bool(problems))
        text = "Engine degraded: " + "; ".join(problems) if problems else ""
        if self.health_label.text() != text:
            self.health_label.setText(text)
            self.health_label.setStyleSheet("color: #b00020; font-weight: bold;")

    def _refresh_status(self) -> None:
        self._refresh_health()
        engines = self.session.engines
        # After a failure the engines still loading never report done: their progress would spin for good.
        if engines and self._engines_failed is None:
            pending = [s for s in engines.values() if not s.done]
            if pending:
                current = pending[0]
                self.engine_label.setText(f"Loading {current.component}: {current.message}")
                if current.fraction is None:
                    self.progress.setRange(0, 0)
                else:
                    self.progress.setRange(0, 100)
                    self.progress.setValue(int(current.fraction * 100))
                self.progress.show()
            else:
                self.engine_label.setText(f"Ready: {len(engines)} engines loaded")
                self.progress.hide()
        agents = self.session.agents
        if agents.version != self._agents_version:
            self._agents_version = agents.version
            current = self.agent_combo.currentData()
            self.agent_combo.clear()
            self.agent_combo.addItem(PLAIN_ASSISTANT, None)
            for customer in agents.customer_ids():
                self.agent_combo.addItem(f"Agent: {customer}", customer)
            index = self.agent_combo.findData(current)
            self.agent_combo.setCurrentIndex(max(index, 0))

    def set_ready(self, text: str) -> None:
        self.engine_label.setText(text)
        self.progress.hide()
