"""Is the speaker heard by the microphone? The echo canceller's switch between its output and the raw input.

With no echo to remove (a headset, or a room the speaker does not reach) AEC3 still treats the caller
speaking over the agent as possible echo and costs words (docs/desktop.md, "Echo cancellation"). So the
canceller runs all the time, and its output is used only while an echo is measured.

The measure: the loudness envelopes of the speaker and the raw microphone, 10 ms a point over the last
3 s, correlated at the lags a room can have, every 100 ms once the speaker has played for 0.4 s of the
window. An echo follows the agent's syllables and pauses at a steady delay (r near 1); a caller speaking
over the agent, or a microphone hearing nothing, does not (r near 0). A call starts engaged, so the echo
of the first words is removed while the measure builds up, and is bypassed after three measures in a row
with no sign of an echo (about 0.7-1.4 s after the agent starts speaking: a caller barging in later is
heard untouched); an echo measured twice at the same delay engages it again.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["EchoDetector"]

_WINDOW = 300  # 10 ms points: 3 s
_EVERY = 10  # points between two measures (100 ms)
_MIN_PLAYING = 40  # points with the speaker playing in the window before a measure counts (0.4 s)
_PLAYING = 100.0**2  # speaker power above which it is playing (RMS 100 of 32767)
_LAGS = range(-10, 31)  # microphone after speaker, in points: the far end's 100 ms margin to 300 ms of room
_ECHO_R = 0.5  # at or above, twice in a row at the same lag (+-20 ms): an echo (a room's delay holds still;
_SAME_LAG = 2  # a chance likeness of two voices' rhythms does not)
_NO_ECHO_R = 0.25  # below, over _QUIET_MEASURES measures in a row: none
_QUIET_MEASURES = 3  # 0.3 s
_FLOOR = 10.0**2  # envelope floor (RMS 10): digital silence and the noise floor are one level


class EchoDetector:
    """Fed one point per 10 ms: the speaker's power then and the raw microphone's power."""

    def __init__(self) -> None:
        self._far: deque[float] = deque(maxlen=_WINDOW)
        self._near: deque[float] = deque(maxlen=_WINDOW)
        self._since_measure = 0
        self._quiet = 0
        self._echo_lag: int | None = None  # the last measure's lag, when it looked like an echo
        self.engaged = True  # the canceller's output is used
        self.echo_heard = False  # an echo was measured at least once this call
        self.correlation: float | None = None  # the latest measure's best r
        self.lag_ms: int | None = None  # and where it was found: the echo's delay after the speaker's queue

    def add(self, far_power: float, near_power: float) -> None:
        self._far.append(10.0 * np.log10(far_power + _FLOOR))
        self._near.append(10.0 * np.log10(near_power + _FLOOR))
        self._since_measure += 1
        if self._since_measure >= _EVERY:
            self._since_measure = 0
            self._measure()

    def _measure(self) -> None:
        far, near = np.asarray(self._far), np.asarray(self._near)
        if int(np.sum(far > 10.0 * np.log10(_PLAYING + _FLOOR))) < _MIN_PLAYING:
            return  # the agent mostly silent: nothing to learn about the room
        best, best_lag = 0.0, 0
        for lag in _LAGS:
            f, n = (far[: len(far) - lag], near[lag:]) if lag >= 0 else (far[-lag:], near[: len(near) + lag])
            r = _pearson(f, n)
            if r > best:
                best, best_lag = r, lag
        previous, self.correlation, self.lag_ms = self._echo_lag, best, best_lag * 10
        self._echo_lag = best_lag if best >= _ECHO_R else None
        if best >= _ECHO_R and previous is not None and abs(best_lag - previous) <= _SAME_LAG:
            self.engaged = self.echo_heard = True
            self._quiet = 0
        elif best >= _ECHO_R:
            self._quiet = 0
        elif best < _NO_ECHO_R:
            self._quiet += 1
            if self._quiet >= _QUIET_MEASURES:
                self.engaged = False
        else:
            self._quiet = 0


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b)) / scale if scale > 1e-6 else 0.0
