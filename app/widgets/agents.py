"""Connected agents and their tools."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app.viewmodels.agents import AgentsModel


class AgentsPanel(QWidget):
    def __init__(self, model: AgentsModel, interval_ms: int = 250, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._drawn_version = -1
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["agent / tool", "details"])
        self.tree.setColumnWidth(0, 220)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def refresh(self) -> None:
        if self._drawn_version == self.model.version:
            return
        self._drawn_version = self.model.version
        self.tree.clear()
        if not self.model.agents:
            self.tree.addTopLevelItem(QTreeWidgetItem(["no agent connected", "start one: conversimple-agent …"]))
        for info in self.model.agents.values():
            top = QTreeWidgetItem([info.label, f"{len(info.tools)} tools  {info.remote}"])
            for name, spec in info.tools.items():
                top.addChild(QTreeWidgetItem([name, str(spec.get("description", ""))]))
            self.tree.addTopLevelItem(top)
            top.setExpanded(True)

    def tool_names(self) -> list[str]:
        return [name for info in self.model.agents.values() for name in info.tools]
