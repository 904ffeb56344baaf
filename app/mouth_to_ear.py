"""Mouth-to-ear latency: from the caller falling silent at the microphone to the agent's answer
reaching the speaker. Only the desktop can measure it: it sees both devices' clocks.

The meter watches what the microphone captured (an energy detector, not the platform's VAD, so
WebRTC's delay is included) and what the speaker played. When the platform commits a turn, the
last voiced microphone block before it marks "mouth"; the first audible speaker block after it
marks "ear".
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from platform_core import WEBRTC_RATE, is_audible

SPEECH_DBFS = -40.0  # a microphone block louder than this is speech
AUDIBLE_DBFS = -50.0  # a speaker block louder than this is the agent talking
MAX_SPEECH_AGE_S = 5.0  # no voiced block this recently before the turn: a typed turn, not measured

Report = Callable[[int, float], None]  # (turn id, seconds)


class MouthToEarMeter:
    def __init__(self, report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._last_voice_end: float | None = None
        self._pending: tuple[int, float] | None = None  # (turn id, mouth time)
        self._awaiting_silence = False

    def on_mic(self, samples: np.ndarray, t_first: float) -> None:
        if is_audible(samples, SPEECH_DBFS):
            with self._lock:
                self._last_voice_end = t_first + len(samples) / WEBRTC_RATE

    def on_turn_started(self, turn_id: int, now: float) -> None:
        with self._lock:
            mouth = self._last_voice_end
            if mouth is None or now - mouth > MAX_SPEECH_AGE_S:
                self._pending = None
                return
            self._pending = (turn_id, mouth)

    def on_speaker(self, samples: np.ndarray, t_first: float) -> None:
        with self._lock:
            pending = self._pending
        if pending is None:
            return
        # First audible 5 ms window inside the block.
        win = 240
        for start in range(0, len(samples), win):
            if is_audible(samples[start : start + win], AUDIBLE_DBFS):
                turn_id, mouth = pending
                with self._lock:
                    self._pending = None
                self._report(turn_id, t_first + start / WEBRTC_RATE - mouth)
                return
