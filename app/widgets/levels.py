"""Live audio levels of the caller and the agent, with VAD state and turn boundaries marked."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.viewmodels.levels import FLOOR_DBFS, LevelsModel, Segment

CALLER_COLOR = (80, 170, 255)
AGENT_COLOR = (255, 150, 60)
MAX_TURN_LINES = 40


def _band(segments: list[Segment], lo: float, hi: float, now: float, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Step outline of `segments` (open ones end at `now`) between y=lo and y=hi, x relative to t0."""
    xs: list[float] = []
    ys: list[float] = []
    for seg in segments:
        end = seg.end if seg.end is not None else now
        xs += [seg.start - t0, seg.start - t0, end - t0, end - t0]
        ys += [lo, hi, hi, lo]
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


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
        self.plot.addLegend(offset=(10, 5))
        self.vad_band = pg.PlotCurveItem(
            pen=pg.mkPen(None), brush=pg.mkBrush(80, 170, 255, 45), fillLevel=FLOOR_DBFS, name="caller speech (VAD)"
        )
        self.agent_band = pg.PlotCurveItem(
            pen=pg.mkPen(None), brush=pg.mkBrush(255, 150, 60, 45), fillLevel=FLOOR_DBFS, name="agent speaking"
        )
        self.plot.addItem(self.vad_band)
        self.plot.addItem(self.agent_band)
        # 1-px pens: Qt's raster engine strokes a 2-px polyline ~3x slower (2.5 ms per curve per frame).
        # Bare curves (no PlotDataItem wrapper): levels are finite, and the wrapper re-scans them per frame.
        self.caller_curve = pg.PlotCurveItem(pen=pg.mkPen(CALLER_COLOR, width=1), name="microphone",
                                             skipFiniteCheck=True)
        self.agent_curve = pg.PlotCurveItem(pen=pg.mkPen(AGENT_COLOR, width=1), name="agent voice",
                                            skipFiniteCheck=True)
        self.plot.addItem(self.caller_curve)
        self.plot.addItem(self.agent_curve)
        self.turn_lines: list[pg.InfiniteLine] = []
        self._line_texts = [""] * MAX_TURN_LINES  # a label's text is laid out again on every setText
        for _ in range(MAX_TURN_LINES):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen((90, 90, 90), style=pg.QtCore.Qt.PenStyle.DashLine))
            line.label = pg.InfLineLabel(line, text="", position=0.92)
            line.hide()
            self.plot.addItem(line)
            self.turn_lines.append(line)

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
        for trace, curve in ((m.caller, self.caller_curve), (m.agent, self.agent_curve)):
            t, db = trace.arrays()
            if self.live and len(t):
                keep = t >= now - self.window_s - 1
                t, db = t[keep], db[keep]
            curve.setData(t - t0, db)
        self.vad_band.setData(*_band(m.vad[-50:] if self.live else m.vad, -10.0, 0.0, now, t0))
        agent = m.agent_speaking[-50:] if self.live else m.agent_speaking
        self.agent_band.setData(*_band(agent, -20.0, -10.0, now, t0))
        turns = [(at, tid) for at, tid in m.turns if not self.live or at >= now - self.window_s]
        for i, (line, (at, tid)) in enumerate(zip(self.turn_lines, turns[-MAX_TURN_LINES:], strict=False)):
            line.setValue(at - t0)
            if self._line_texts[i] != (text := f"turn {tid}"):
                self._line_texts[i] = text
                line.label.setText(text)
            line.show()
        for line in self.turn_lines[len(turns[-MAX_TURN_LINES:]) :]:
            line.hide()
        self.plot.setXRange(lo, hi, padding=0)
        self.readout.setText(
            f"microphone: {m.caller.latest_dbfs:6.1f} dBFS   agent: {m.agent.latest_dbfs:6.1f} dBFS"
        )
        self.frames += 1
