"""Settings shared by the app's pyqtgraph plots."""

from __future__ import annotations

import pyqtgraph as pg

LEFT_AXIS_WIDTH = 48  # px: room for the widest tick label the app's plots show ("-60", "10.5")


def steady_axes(plot: pg.PlotWidget) -> None:
    """Keep the axes' geometry fixed while the data and ranges change.

    By default a range change re-renders each axis label (for an SI prefix the app never uses), and a
    wider tick label resizes the axis, which lays out the whole plot again: on the GUI's event loop
    that cost up to ~60 ms per update under load."""
    for name in ("left", "bottom"):
        plot.getAxis(name).enableAutoSIPrefix(False)
    plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
