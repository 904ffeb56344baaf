"""Real-time pacing for outbound audio tracks: aiortc pulls frames as fast as `recv` returns them."""

from __future__ import annotations

import asyncio
import time

from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE


class FramePacer:
    """Hands out the timestamp of each 20 ms frame at the wall-clock time it is due.

    Paced by timestamps, not by sleeping 20 ms each time, so the clock never drifts. After a long
    stall (a blocked loop) it re-anchors instead of bursting the backlog out at once.
    """

    def __init__(self, rate: int = WEBRTC_RATE, frame_samples: int = FRAME_SAMPLES, max_lag_s: float = 0.2) -> None:
        self.rate = rate
        self.frame_samples = frame_samples
        self.max_lag_s = max_lag_s
        self.started_at: float | None = None  # time.monotonic() of the first frame
        self._anchor = 0.0
        self._next_pts = 0

    @property
    def position(self) -> int:
        """The pts of the next frame: how many samples have been handed out."""
        return self._next_pts

    def take(self) -> int:
        """Hand out the next frame's pts now, without waiting: for a source its own device paces (a
        microphone), which falls back to `next_frame` when the device stops."""
        pts = self._next_pts
        self._next_pts += self.frame_samples
        if self.started_at is None:
            self.started_at = self._anchor = time.monotonic()
        return pts

    async def next_frame(self) -> int:
        """Wait until the next frame is due; return its pts (in samples)."""
        pts = self._next_pts
        self._next_pts += self.frame_samples
        if self.started_at is None:
            self.started_at = self._anchor = time.monotonic()
            return pts
        wait = self._anchor + pts / self.rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -self.max_lag_s:
            self._anchor = time.monotonic() - pts / self.rate
        return pts
