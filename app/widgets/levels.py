"""Live audio levels of the caller and the agent, with VAD state, turn boundaries and turn-taking
decisions (why the agent paused, resumed, stopped or waited) marked."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QTimer
from PySide6.QtGui import QBrush, QPainter, QPen
from PySide6.QtWidgets import QLabel, QStyleOptionGraphicsItem, QVBoxLayout, QWidget

from app.viewmodels.levels import FLOOR_DBFS, LevelsModel, Segment
from app.widgets.plots import steady_axes

CALLER_COLOR = (80, 170, 255)
AGENT_COLOR = (255, 150, 60)
CALLER_PEN, AGENT_PEN = pg.mkPen(CALLER_COLOR, width=1), pg.mkPen(AGENT_COLOR, width=1)
VAD_BRUSH, AGENT_SPEAKING_BRUSH = pg.mkBrush(*CALLER_COLOR, 45), pg.mkBrush(*AGENT_COLOR, 45)
MAX_TURN_LINES = 40
MAX_DECISION_MARKS = 40
DECISION_PEN = pg.mkPen((200, 40, 40), style=pg.QtCore.Qt.PenStyle.DotLine)


def _band(segments: list[Segment], lo: float, hi: float, now: float, t0: float) -> list[QRectF]:
    """One rectangle per segment (open ones end at `now`) between y=lo and y=hi, x relative to t0."""
    return [
        QRectF(seg.start - t0, lo, (seg.end if seg.end is not None else now) - seg.start, hi - lo) for seg in segments
    ]


class LevelTraces(pg.GraphicsObject):
    """Both level curves and both activity bands, drawn by one item.

    Four stock plot items cost ~5 ms per frame at 40 frames/s, mostly pyqtgraph recomputing each
    one's data bounds for the scene; this item's bounds are the plot's fixed window instead."""

    def __init__(self) -> None:
        super().__init__()
        self.bounds = QRectF()
        self.curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.bands: dict[str, list[QRectF]] = {}
        self._pens = {"caller": CALLER_PEN, "agent": AGENT_PEN}
        self._brushes = {"vad": VAD_BRUSH, "agent": AGENT_SPEAKING_BRUSH}

    def set_bounds(self, x0: float, x1: float) -> None:
        bounds = QRectF(x0, FLOOR_DBFS, x1 - x0, -FLOOR_DBFS)
        if bounds != self.bounds:
            self.prepareGeometryChange()
            self.bounds = bounds

    def boundingRect(self) -> QRectF:
        return self.bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setPen(QPen(pg.QtCore.Qt.PenStyle.NoPen))
        for name, rects in self.bands.items():
            painter.setBrush(self._brushes[name])
            for rect in rects:
                painter.drawRect(rect)
        painter.setBrush(QBrush())
        for name, (x, y) in self.curves.items():
            if len(x) > 1:
                painter.setPen(self._pens[name])
                painter.drawPath(pg.arrayToQPath(x, y))


class LevelsPanel(QWidget):
    """Repaints on its own timer (default 25 ms = 40 frames/s); `frames` counts repaints."""

    def __init__(
        self,
        model: LevelsModel,
        *,
        live: bool = True,
        window_s: float = 10.0,
        interval_ms: int = 25,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.live = live
        self.window_s = window_s
        self.frames = 0
        self._drawn_version = -1
        self._origin: float | None = None  # review mode: x axis starts at the first level

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=not live, y=False)
        self.plot.setYRange(FLOOR_DBFS, 0, padding=0)
        self.plot.setLabel("left", "dBFS")
        self.plot.setLabel("bottom", "seconds" + (" (0 = now)" if live else ""))
        steady_axes(self.plot)
        legend = self.plot.addLegend(offset=(10, 5))
        # 1-px pens: Qt's raster engine strokes a 2-px polyline ~3x slower (2.5 ms per curve per frame).
        self.traces = LevelTraces()
        self.plot.addItem(self.traces)
        for sample, name in (  # legend swatches only: `traces` draws the data
            (pg.BarGraphItem(x=[], height=[], width=1, brush=VAD_BRUSH), "caller speech (VAD)"),
            (pg.BarGraphItem(x=[], height=[], width=1, brush=AGENT_SPEAKING_BRUSH), "agent speaking"),
            (pg.PlotDataItem(pen=CALLER_PEN), "microphone"),
            (pg.PlotDataItem(pen=AGENT_PEN), "agent voice"),
        ):
            legend.addItem(sample, name)
        turn_pen = pg.mkPen((90, 90, 90), style=pg.QtCore.Qt.PenStyle.DashLine)
        self.turn_lines = self._line_pool(MAX_TURN_LINES, turn_pen, 0.92)
        self.decision_marks = self._line_pool(MAX_DECISION_MARKS, DECISION_PEN, 0.55)
        self._mark_texts: dict[int, str] = {}  # a label is laid out again whenever its format changes

        self.readout = QLabel("microphone: — dBFS   agent: — dBFS")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        layout.addWidget(self.readout)

        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.repaint_levels)
        self.timer.start()

    def repaint_levels(self) -> None:
        # Live mode scrolls every tick even without new data; review mode only redraws on change.
        if not self.live and self._drawn_version == self.model.version:
            return
        self._drawn_version = self.model.version
        m = self.model
        if self.live:
            now = time.monotonic()
            t0 = now
            lo, hi = -self.window_s, 0.0
        else:
            span = m.time_range()
            if span is None:
                return
            t0 = self._origin = span[0] if self._origin is None else self._origin
            now, lo, hi = span[1], 0.0, span[1] - t0
        traces = self.traces
        for name, trace in (("caller", m.caller), ("agent", m.agent)):
            t, db = trace.arrays()
            if self.live and len(t):
                keep = t >= now - self.window_s - 1
                t, db = t[keep], db[keep]
            traces.curves[name] = (t - t0, db)
        traces.bands["vad"] = _band(m.vad[-50:] if self.live else m.vad, -10.0, 0.0, now, t0)
        traces.bands["agent"] = _band(m.agent_speaking[-50:] if self.live else m.agent_speaking, -20.0, -10.0, now, t0)
        traces.set_bounds(lo, hi)
        traces.update()
        visible = (lambda at: at >= now - self.window_s) if self.live else (lambda at: True)
        self._place(self.turn_lines, [(at, f"turn {tid}") for at, tid in m.turns if visible(at)], t0)
        self._place(self.decision_marks, [(at, label) for at, label in m.decisions if visible(at)], t0)
        self.plot.setXRange(lo, hi, padding=0)
        self.readout.setText(f"microphone: {m.caller.latest_dbfs:6.1f} dBFS   agent: {m.agent.latest_dbfs:6.1f} dBFS")
        self.frames += 1

    def _line_pool(self, size: int, pen: QPen, label_at: float) -> list[pg.InfiniteLine]:
        """Vertical lines made once and moved each frame (creating items per frame costs the scene)."""
        lines = []
        for _ in range(size):
            line = pg.InfiniteLine(angle=90, pen=pen)
            line.label = pg.InfLineLabel(line, text="", position=label_at)
            line.hide()
            self.plot.addItem(line)
            lines.append(line)
        return lines

    def _place(self, lines: list[pg.InfiniteLine], marks: list[tuple[float, str]], t0: float) -> None:
        """The newest marks on the pool's lines; the rest hidden."""
        marks = marks[-len(lines) :]
        for line, (at, text) in zip(lines, marks, strict=False):
            if self._mark_texts.get(id(line)) != text:
                self._mark_texts[id(line)] = text
                # The label re-renders its format on every move (setText would last one frame).
                line.label.setFormat(text)
            line.show()  # a hidden line's label skips its update
            line.setValue(at - t0)
        for line in lines[len(marks) :]:
            line.hide()
