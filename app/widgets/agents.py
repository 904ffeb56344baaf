"""Connected agents and their tools."""

from __future__ import annotations

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from app.viewmodels.agents import AgentsModel
from app.widgets.timed_panel import VersionedPanel


class AgentsPanel(VersionedPanel):
    def __init__(self, model: AgentsModel, interval_ms: int = 250, parent: QWidget | None = None) -> None:
        self.model = model
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["agent / tool", "details"])
        self.tree.setColumnWidth(0, 220)
        super().__init__(self.tree, interval_ms, parent)

    def current_version(self) -> int:
        return self.model.version

    def redraw(self) -> None:
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
