"""The event log: every platform event in order, errors in red."""

from __future__ import annotations

import html

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QPlainTextEdit, QVBoxLayout, QWidget

from app.viewmodels.event_log import EventLogModel

COLORS = {"error": "#c00000", "warning": "#b06000", "info": "#202020"}


class EventLogPanel(QWidget):
    def __init__(self, model: EventLogModel, interval_ms: int = 150, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._seen = 0
        self._t0: float | None = None
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(model.maxlen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def refresh(self) -> None:
        entries = self.model.since(self._seen)
        self._seen = self.model.total
        for entry in entries:
            if self._t0 is None:
                self._t0 = entry.t
            color = COLORS[entry.severity]
            self.view.appendHtml(
                f'<span style="color:{color}"><code>{entry.t - self._t0:8.3f}</code> '
                f"<b>{entry.kind}</b> {html.escape(entry.text)}</span>"
            )
