"""Live tool calls: name, arguments, status as it changes, duration, result or error; full JSON on selection."""

from __future__ import annotations

import json
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QPlainTextEdit,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.tool_calls import ToolCallRow, ToolCallsModel

COLUMNS = ("name", "arguments", "status", "duration", "result / error")
STATUS_COLORS = {
    "started": QColor(255, 243, 200),
    "done": QColor(215, 245, 215),
    "error": QColor(255, 215, 215),
    "timeout": QColor(255, 215, 215),
    "cancelled": QColor(230, 230, 230),
}


class ToolCallsPanel(QWidget):
    def __init__(self, model: ToolCallsModel, interval_ms: int = 100, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._drawn_version = -1
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setPlaceholderText("Select a tool call to see its full JSON.")
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(self.detail)
        splitter.setSizes([600, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def row_texts(self) -> list[list[str]]:
        """What the table shows (for tests)."""
        rows = []
        for r in range(self.table.rowCount()):
            items = [self.table.item(r, c) for c in range(len(COLUMNS))]
            rows.append([item.text() if item is not None else "" for item in items])
        return rows

    def _cells(self, row: ToolCallRow, now: float) -> list[str]:
        elapsed = row.elapsed(now)
        duration = f"{elapsed * 1000:.0f} ms" + ("" if row.finished else " …")
        args = json.dumps(row.arguments, ensure_ascii=False, default=str)
        return [row.name, args, row.status, duration, row.outcome_text()]

    def refresh(self) -> None:
        rows = self.model.ordered()
        running = any(not r.finished for r in rows)
        if self._drawn_version == self.model.version and not running:
            return
        self._drawn_version = self.model.version
        now = time.monotonic()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(self._cells(row, now)):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
                    item.setToolTip(text)
                item.setData(Qt.ItemDataRole.UserRole, row.call_id)
                item.setBackground(STATUS_COLORS.get(row.status, QColor("white")))
        self._show_selected()

    def _show_selected(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        row = self.model.rows.get(items[0].data(Qt.ItemDataRole.UserRole))
        if row is not None:
            text = row.full_json()
            if self.detail.toPlainText() != text:
                self.detail.setPlainText(text)
