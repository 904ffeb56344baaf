"""All the panels of one session, laid out together (the main window and the review window share it)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.viewmodels.session import SessionModel
from app.widgets.agents import AgentsPanel
from app.widgets.event_log import EventLogPanel
from app.widgets.latency import LatencyPanel
from app.widgets.levels import LevelsPanel
from app.widgets.tool_calls import ToolCallsPanel
from app.widgets.transcript import TranscriptPanel


class SessionPanels(QWidget):
    def __init__(self, session: SessionModel, *, live: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.levels = LevelsPanel(session.levels, live=live)
        self.latency = LatencyPanel(session.latency)
        self.tool_calls = ToolCallsPanel(session.tool_calls)
        self.transcript = TranscriptPanel(session.transcript)
        self.agents = AgentsPanel(session.agents)
        self.event_log = EventLogPanel(session.log)

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.levels)
        left.addWidget(self.latency)
        left.addWidget(self.tool_calls)
        left.setSizes([260, 300, 220])
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.agents, "Agents")
        self.side_tabs.addTab(self.event_log, "Event log")
        right = QSplitter(Qt.Orientation.Vertical)
        self.transcript_box = QWidget()  # the main window adds the text box under the transcript
        self.transcript_layout = QVBoxLayout(self.transcript_box)
        self.transcript_layout.setContentsMargins(0, 0, 0, 0)
        self.transcript_layout.addWidget(self.transcript)
        right.addWidget(self.transcript_box)
        right.addWidget(self.side_tabs)
        right.setSizes([450, 330])
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(left)
        main.addWidget(right)
        main.setSizes([1000, 420])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(main)
        stagger(
            [
                self.levels.timer,
                self.latency.timer,
                self.tool_calls.timer,
                self.transcript.timer,
                self.event_log.timer,
                self.agents.timer,
            ]
        )


def stagger(timers: list[QTimer], step_ms: int = 6) -> None:
    """Restart the panels' redraw timers out of phase with each other.

    Each panel redraws on its own timer; coarse timers (Qt's default) are aligned on purpose, so
    at every common multiple of their intervals all the panels redrew, and painted, in one turn of
    the event loop that the platform shares: ~60 ms of GUI work at once when a turn's figures
    arrived. Precise timers started `step_ms` apart keep each redraw in its own turn."""
    for i, timer in enumerate(timers):
        timer.stop()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        QTimer.singleShot(i * step_ms, timer, timer.start)
