"""The conversation transcript, partial results in grey and italic."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QTextBrowser, QWidget

from app.viewmodels.transcript import TranscriptModel
from app.widgets.timed_panel import VersionedPanel


class TranscriptPanel(VersionedPanel):
    def __init__(self, model: TranscriptModel, interval_ms: int = 100, parent: QWidget | None = None) -> None:
        self.model = model
        self.view = QTextBrowser()
        super().__init__(self.view, interval_ms, parent)

    def current_version(self) -> int:
        return self.model.version

    def redraw(self) -> None:
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
