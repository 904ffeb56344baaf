"""The event log: every platform event in order, errors in red."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QPlainTextEdit, QWidget

from app.viewmodels.event_log import EventLogModel
from app.widgets.timed_panel import TimedPanel

COLORS = {"error": "#c00000", "warning": "#b06000", "info": "#202020"}


class EventLogPanel(TimedPanel):
    """Appends only the entries that are new since the last refresh."""

    def __init__(self, model: EventLogModel, interval_ms: int = 150, parent: QWidget | None = None) -> None:
        self.model = model
        self._seen = 0
        self._t0: float | None = None
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(model.maxlen)
        super().__init__(self.view, interval_ms, parent)

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
