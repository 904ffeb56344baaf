"""Per-turn latency: stacked stage bars, a time series over the conversation, p50/p95."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.viewmodels.latency import STAGES, SUMMARY_METRICS, LatencyModel
from app.widgets.plots import steady_axes
from platform_core.events import METRICS

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


SIDE_COLUMN_WIDTH = 330  # px


def _ms(value: float | int | None) -> str:
    return "—" if value is None else f"{value * 1000:.0f} ms"


class LatencyPanel(QWidget):
    def __init__(self, model: LatencyModel, interval_ms: int = 200, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._drawn_version = -1

        self.bars_plot, self.bars = self._build_bars_plot()
        self._heights: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.series_plot, self.e2e_curve, self.m2e_curve = self._build_series_plot()
        for plot in (self.bars_plot, self.series_plot):
            steady_axes(plot)
        self.mouth_to_ear = self._build_mouth_to_ear_label()
        self.table = QTableWidget(len(SUMMARY_METRICS), 3)
        self.table.setHorizontalHeaderLabels(["n", "p50", "p95"])
        self.table.setVerticalHeaderLabels(list(SUMMARY_METRICS))
        for row, name in enumerate(SUMMARY_METRICS):
            header = self.table.verticalHeaderItem(row)
            if header is not None and name in METRICS:
                header.setToolTip(f"{METRICS[name].label}: {METRICS[name].description}")
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)

        plots = QHBoxLayout()
        plots.addWidget(self.bars_plot, 3)
        plots.addWidget(self.series_plot, 2)
        plots.addWidget(self._build_side_column(), 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(plots)

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def _build_bars_plot(self) -> tuple[pg.PlotWidget, pg.BarGraphItem]:
        plot = pg.PlotWidget(background="w", title="per turn: where the time went")
        plot.setLabel("left", "seconds")
        plot.setLabel("bottom", "turn")
        plot.setMenuEnabled(False)
        legend = plot.addLegend(offset=(-5, 5), colCount=1, labelTextSize="7pt")
        self._brushes = {stage: pg.mkBrush(*STAGE_COLORS[stage]) for stage in STAGES}
        for stage in STAGES:  # swatches for the legend only: one item draws every bar
            legend.addItem(pg.BarGraphItem(x=[], height=[], width=0.6, brush=self._brushes[stage]), stage)
        # One item for all the stacked bars: pyqtgraph's per-item bookkeeping (bounds, pixel vectors)
        # made eight items cost ~10 ms per update, and the update landed on the GUI's event loop.
        bars = pg.BarGraphItem(x=[], height=[], width=0.6)
        plot.addItem(bars)
        return plot, bars

    def _build_series_plot(self) -> tuple[pg.PlotWidget, pg.PlotDataItem, pg.PlotDataItem]:
        plot = pg.PlotWidget(background="w", title="over the conversation")
        plot.setLabel("left", "seconds")
        plot.setLabel("bottom", "turn")
        plot.setMenuEnabled(False)
        plot.addLegend(offset=(5, 5))
        e2e = plot.plot(pen=pg.mkPen((120, 200, 120), width=2), symbol="o", name=METRICS["e2e_latency"].label)
        m2e = plot.plot(pen=pg.mkPen((230, 90, 90), width=2), symbol="t", name=METRICS["mouth_to_ear"].label)
        return plot, e2e, m2e

    def _build_mouth_to_ear_label(self) -> QLabel:
        label = QLabel(f"{METRICS['mouth_to_ear'].label}: —")
        big = QFont(label.font())
        big.setPointSize(12)
        big.setBold(True)
        label.setFont(big)
        label.setWordWrap(True)
        label.setToolTip(METRICS["mouth_to_ear"].description)
        label.setFixedHeight(2 * QFontMetrics(big).lineSpacing() + 4)  # "last ..., p50 ..., p95 ..." wraps once
        return label

    def _build_side_column(self) -> QWidget:
        # A fixed-width side column: text that grows (a wrapped mouth-to-ear line, wider table cells)
        # must not resize the plots, which would re-render both of them on the shared event loop.
        column = QWidget()
        column.setFixedWidth(SIDE_COLUMN_WIDTH)
        side = QVBoxLayout(column)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(self.mouth_to_ear)
        side.addWidget(self.table)
        return column

    def bar_heights(self) -> dict[str, list[float]]:
        """The stacked values currently drawn, by stage (for tests)."""
        return {stage: list(heights) for stage, heights in self._heights.items()}

    def refresh(self) -> None:
        if self._drawn_version == self.model.version:
            return
        self._drawn_version = self.model.version
        turns = self.model.ordered()
        xs = np.array([t.turn_id for t in turns], dtype=float)
        bottom = np.zeros(len(turns))
        stages = [t.stages() for t in turns]
        bar_x, bar_y0, bar_height, brushes = [], [], [], []
        for stage in STAGES:
            heights = np.array([s[stage] for s in stages], dtype=float)
            self._heights[stage] = [float(h) for h in heights]
            shown = heights > 0
            bar_x.append(xs[shown])
            bar_y0.append(bottom[shown])
            bar_height.append(heights[shown])
            brushes += [self._brushes[stage]] * int(shown.sum())
            bottom += heights
        self.bars.setOpts(
            x=np.concatenate(bar_x),
            y0=np.concatenate(bar_y0),
            height=np.concatenate(bar_height),
            brushes=brushes,
            width=0.6,
        )
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
        self.mouth_to_ear.setText(
            f"{METRICS['mouth_to_ear'].label}: last {_ms(last)}, p50 {_ms(m2e['p50'])}, p95 {_ms(m2e['p95'])}"
        )
        if len(xs):
            self.bars_plot.setXRange(xs.min() - 0.6, xs.max() + 1.6, padding=0)  # room for the legend
