"""A saved conversation reopened: the same panels, drawn over the whole conversation."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMainWindow, QWidget

from app.recording import SavedConversation, export_metrics
from app.widgets.panels import SessionPanels


class ReviewWindow(QMainWindow):
    def __init__(self, saved: SavedConversation, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.saved = saved
        self.setWindowTitle(f"Conversimple Studio — {saved.folder.name}")
        self.resize(1400, 860)
        self.panels = SessionPanels(saved.session, live=False)
        self.setCentralWidget(self.panels)
        menu = self.menuBar().addMenu("&File")
        for fmt in ("csv", "json"):
            action = QAction(f"Export metrics as {fmt.upper()}…", self)
            action.triggered.connect(lambda _=False, f=fmt: self._export(f))
            menu.addAction(action)
        seconds = len(saved.caller_audio) / 48000
        note = f"{len(saved.events)} events, {seconds:.1f} s of microphone audio"
        if saved.skipped_lines:
            note += f"; {saved.skipped_lines} unreadable event lines were skipped"
        self.statusBar().showMessage(note)

    def _export(self, fmt: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", str(self.saved.folder / f"metrics.{fmt}"))
        if path:
            export_metrics(self.saved.session, Path(path), fmt)
