"""The conversation transcript, partial results in grey and italic."""

from __future__ import annotations

import html

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from app.viewmodels.transcript import TranscriptModel


class TranscriptPanel(QWidget):
    def __init__(self, model: TranscriptModel, interval_ms: int = 100, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._drawn_version = -1
        self.view = QTextBrowser()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def refresh(self) -> None:
        if self._drawn_version == self.model.version:
            return
        self._drawn_version = self.model.version
        parts = []
        for line in self.model.lines:
            who = "You" if line.role == "user" else "Agent"
            color = "#1f5fa8" if line.role == "user" else "#a85a1f"
            text = html.escape(line.text)
            if not line.final:
                text = f'<i style="color:#888">{text} …</i>'
            if line.interrupted:
                text += ' <span style="color:#c00">[interrupted]</span>'
            parts.append(f'<p><b style="color:{color}">{who}:</b> {text}</p>')
        self.view.setHtml("".join(parts))
        bar = self.view.verticalScrollBar()
        bar.setValue(bar.maximum())
