"""Per-turn latency: stacked stage bars, a time series over the conversation, p50/p95."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.viewmodels.latency import STAGES, SUMMARY_METRICS, LatencyModel

STAGE_COLORS = {
    "endpointing": (150, 150, 150),
    "stt": (80, 170, 255),
    "tool choice": (60, 110, 90),
    "llm": (120, 200, 120),
    "tools": (200, 120, 220),
    "tts": (255, 150, 60),
    "other": (200, 200, 90),
    "playout": (230, 90, 90),
}


def _ms(value: float | int | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


class LatencyPanel(QWidget):
    def __init__(self, model: LatencyModel, interval_ms: int = 200, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._drawn_version = -1

        self.bars_plot = pg.PlotWidget(background="w", title="per turn: where the time went")
        self.bars_plot.setLabel("left", "seconds")
        self.bars_plot.setLabel("bottom", "turn")
        self.bars_plot.setMenuEnabled(False)
        self.bars_plot.addLegend(offset=(-5, 5), colCount=1, labelTextSize="7pt")
        self.bars: dict[str, pg.BarGraphItem] = {}
        for stage in STAGES:
            item = pg.BarGraphItem(x=[], height=[], width=0.6, brush=pg.mkBrush(*STAGE_COLORS[stage]), name=stage)
            self.bars_plot.addItem(item)
            self.bars[stage] = item

        self.series_plot = pg.PlotWidget(background="w", title="over the conversation")
        self.series_plot.setLabel("left", "seconds")
        self.series_plot.setLabel("bottom", "turn")
        self.series_plot.setMenuEnabled(False)
        self.series_plot.addLegend(offset=(5, 5))
        self.e2e_curve = self.series_plot.plot(
            pen=pg.mkPen((120, 200, 120), width=2), symbol="o", name="voice-to-voice"
        )
        self.m2e_curve = self.series_plot.plot(pen=pg.mkPen((230, 90, 90), width=2), symbol="t", name="mouth-to-ear")

        self.mouth_to_ear = QLabel("mouth-to-ear: —")
        self.mouth_to_ear.setStyleSheet("font-size: 12pt; font-weight: bold;")
        self.mouth_to_ear.setWordWrap(True)
        self.mouth_to_ear.setToolTip(
            "From the moment you stopped speaking at the microphone to the agent's voice reaching the"
            " speaker: includes WebRTC, the jitter buffer and the audio devices."
        )
        self.table = QTableWidget(len(SUMMARY_METRICS), 3)
        self.table.setHorizontalHeaderLabels(["n", "p50", "p95"])
        self.table.setVerticalHeaderLabels(list(SUMMARY_METRICS))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumWidth(330)

        plots = QHBoxLayout()
        plots.addWidget(self.bars_plot, 3)
        plots.addWidget(self.series_plot, 2)
        side = QVBoxLayout()
        side.addWidget(self.mouth_to_ear)
        side.addWidget(self.table)
        plots.addLayout(side, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(plots)

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def bar_heights(self) -> dict[str, list[float]]:
        """The stacked values currently drawn, by stage (for tests)."""
        return {stage: [float(h) for h in item.opts["height"]] for stage, item in self.bars.items()}

    def refresh(self) -> None:
        if self._drawn_version == self.model.version:
            return
        self._drawn_version = self.model.version
        turns = self.model.ordered()
        xs = np.array([t.turn_id for t in turns], dtype=float)
        bottom = np.zeros(len(turns))
        stages = [t.stages() for t in turns]
        for stage in STAGES:
            heights = np.array([s[stage] for s in stages], dtype=float)
            self.bars[stage].setOpts(x=xs, height=heights, y0=bottom.copy(), width=0.6)
            bottom += heights
        for name, curve in (("e2e_latency", self.e2e_curve), ("mouth_to_ear", self.m2e_curve)):
            pts = [(t.turn_id, t.metrics[name]) for t in turns if name in t.metrics]
            curve.setData([p[0] for p in pts], [p[1] for p in pts])
        summary = self.model.summary()
        for row, name in enumerate(SUMMARY_METRICS):
            s = summary[name]
            for col, text in enumerate((str(s["n"]), _ms(s["p50"]), _ms(s["p95"]))):
                item = self.table.item(row, col)
                # Only changed cells: each change re-measures the resize-to-contents columns (~0.25 ms).
                if item is None:
                    self.table.setItem(row, col, QTableWidgetItem(text))
                elif item.text() != text:
                    item.setText(text)
        m2e = summary["mouth_to_ear"]
        last = next((t.metrics["mouth_to_ear"] for t in reversed(turns) if "mouth_to_ear" in t.metrics), None)
        self.mouth_to_ear.setText(f"mouth-to-ear: last {_ms(last)}, p50 {_ms(m2e['p50'])}, p95 {_ms(m2e['p95'])}")
        if len(xs):
            self.bars_plot.setXRange(xs.min() - 0.6, xs.max() + 1.6, padding=0)  # room for the legend
