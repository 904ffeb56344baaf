"""The shape every text-like panel shares: one view, redrawn on the panel's own timer.

Events arrive far faster than anyone reads them; redrawing on a timer (not per event) keeps the GUI
loop free, and `refresh` skips the work entirely when nothing changed since the last draw.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget


class TimedPanel(QWidget):
    def __init__(self, view: QWidget, interval_ms: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(view)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def refresh(self) -> None:
        raise NotImplementedError


class VersionedPanel(TimedPanel):
    """Redraws the whole view when the model's `version` changed since the last draw."""

    model_version: int = -1

    def current_version(self) -> int:
        raise NotImplementedError

    def refresh(self) -> None:
        version = self.current_version()
        if version == self.model_version:
            return
        self.model_version = version
        self.redraw()

    def redraw(self) -> None:
        raise NotImplementedError
