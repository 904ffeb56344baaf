"""Acoustic echo cancellation for the app's own microphone and speaker (a laptop without a headset).

WebRTC's audio processing module (AEC3), as shipped in the `livekit` wheel, does the work: every 10 ms
of what the speaker plays goes in as the far end (`process_reverse_stream`), every 10 ms of the
microphone is cleaned in place (`process_stream`). The delay hint is taken from the device streams'
own timing: every speaker block carries the time it reaches the DAC, every microphone block the time
it left the ADC, and the module gets the speaker's frames just before the microphone's frame captured
after them. AEC3's delay estimator finds the rest (the room's path and any clock error).

The module runs for the whole call, but its output replaces the microphone's only while the speaker is
heard in it (`app/echo_detector.py`): with no echo to remove it would cost the caller's words.

Both ends are called from PortAudio's threads (one each); only the microphone's calls the module.
Noise suppression stays off by default: measured here it cost the caller's words through whisper
(docs/desktop.md, "Echo cancellation").
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.echo_detector import EchoDetector
from platform_core import WEBRTC_RATE

__all__ = ["EchoCanceller"]

CHUNK = WEBRTC_RATE // 100  # the module's frame: 10 ms
_SMOOTH = 0.02  # per-10 ms weight of the power averages (~0.5 s time constant)
_MARGIN_S = 0.1  # speaker frames go in this early: a device clock that runs late must not make echo precede them
_MAX_QUEUED = 200  # 2 s of speaker frames waiting for the microphone (it stalled: drop the oldest)
_FAR_ACTIVE = 100.0**2  # far-end power above which the echo path is being measured (RMS 100 of 32767)


class EchoCanceller:
    """One call's canceller. `far_end` from the speaker's callback, `near_end` from the microphone's."""

    def __init__(self, *, noise_suppression: bool = False, high_pass_filter: bool = True) -> None:
        from livekit import rtc  # imported with the call (its native library loads in ~0.3 s)

        self._rtc: Any = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, noise_suppression=noise_suppression, high_pass_filter=high_pass_filter
        )
        self._lock = threading.Lock()  # the far-end queue, shared by the two device threads
        self._far: deque[tuple[float, np.ndarray]] = deque(maxlen=_MAX_QUEUED)  # (DAC time, 10 ms)
        self._far_rest = np.zeros(0, dtype=np.int16)
        self._near_rest = np.zeros(0, dtype=np.int16)
        self.render_delay_s = 0.0  # speaker: hand-over to the DAC
        self.capture_delay_s = 0.0  # microphone: ADC to hand-over
        self._far_now = 0.0  # the power of the speaker's latest 10 ms
        self._far_power = 0.0
        self._in_power = 0.0  # microphone power before / after, while the far end is playing
        self._out_power = 0.0
        self.frames = 0
        self.detector = EchoDetector()
        self.error: str | None = None  # the module failed: audio passes through unchanged from then on

    @property
    def engaged(self) -> bool:
        """The microphone's audio is the canceller's output (an echo is heard, or the call is young)."""
        return self.detector.engaged

    @property
    def status(self) -> str:
        """For the status bar: "on, echo -45 dB" (removing it), "on, listening for echo", or bypassed."""
        if not self.engaged:
            return "on, no echo heard (microphone untouched)"
        erle = self.erle_db
        if not self.detector.echo_heard or erle is None:
            return "on, listening for echo"
        return f"on, echo -{erle:.0f} dB"

    @property
    def delay_ms(self) -> int:
        """The devices' buffering, speaker and microphone together (the queue takes it out)."""
        return round((self.render_delay_s + self.capture_delay_s) * 1000)

    @property
    def erle_db(self) -> float | None:
        """Echo return loss enhancement: how much quieter the microphone is after the canceller while the
        speaker plays (None until the far end has played). Caller speech over the agent lowers it."""
        if self._out_power <= 0.0 or self._in_power <= 0.0:
            return None
        return 10.0 * math.log10(max(self._in_power, 1.0) / max(self._out_power, 1.0))

    @property
    def coupling_db(self) -> float | None:
        """How loud the microphone is against the speaker while the speaker plays (the echo path's gain, when
        the caller is silent): -10 for a speaker 10 dB quieter at the microphone than it plays."""
        if self._in_power <= 0.0 or self._far_power <= 0.0:
            return None
        return 10.0 * math.log10(max(self._in_power, 1.0) / max(self._far_power, 1.0))

    def far_end(self, samples: np.ndarray, t_dac: float) -> None:
        """What the speaker plays, `t_dac` the monotonic time its first sample reaches the speaker. Only
        queued here: the microphone's thread hands it to the module when its time has come."""
        self.render_delay_s = max(0.0, t_dac - time.monotonic())
        with self._lock:
            data = np.concatenate([self._far_rest, samples.astype(np.int16, copy=False)])
            whole = len(data) - len(data) % CHUNK
            t0 = t_dac - len(self._far_rest) / WEBRTC_RATE
            for start in range(0, whole, CHUNK):
                self._far.append((t0 + start / WEBRTC_RATE, data[start : start + CHUNK].copy()))
            self._far_rest = data[whole:].copy()

    def _far_until(self, t: float) -> list[np.ndarray]:
        """The speaker's frames played by `t` (plus a margin), oldest first, taken off the queue."""
        due = []
        with self._lock:
            while self._far and self._far[0][0] <= t + _MARGIN_S:
                due.append(self._far.popleft()[1])
        return due

    def near_end(self, samples: np.ndarray, t_adc: float) -> np.ndarray:
        """The microphone's block (`t_adc`: when its first sample was captured), echo removed.

        Before each 10 ms of microphone the module is given what the speaker had played by then, so the
        two streams reach it in the order the room heard them, whatever each device's buffering and its
        threads' timing (AEC3's own delay search, ~0.5 s, is left with the acoustic path and the error).
        Output lags input only when a block is not a whole number of 10 ms frames (the app's are 20 ms)."""
        self.capture_delay_s = max(0.0, time.monotonic() - t_adc)
        if self.error is not None:
            return samples
        out = samples
        with self._guard():
            self._apm.set_stream_delay_ms(0)  # aligned by the devices' clocks: the rest is the room's
            data = np.concatenate([self._near_rest, samples.astype(np.int16, copy=False)])
            whole = len(data) - len(data) % CHUNK
            t0 = t_adc - len(self._near_rest) / WEBRTC_RATE
            out = np.empty(whole, dtype=np.int16)
            for start in range(0, whole, CHUNK):
                for far in self._far_until(t0 + start / WEBRTC_RATE):
                    self._far_now = float(np.mean(far.astype(np.float32) ** 2))
                    self._apm.process_reverse_stream(self._frame(far))
                chunk = data[start : start + CHUNK].copy()
                frame = self._frame(chunk)
                self._apm.process_stream(frame)
                cleaned = np.frombuffer(frame.data, dtype=np.int16)
                self._measure(chunk, cleaned)
                out[start : start + CHUNK] = cleaned if self.detector.engaged else chunk
            self._near_rest = data[whole:].copy()
            self.frames += whole // CHUNK
            if len(out) < len(samples):  # keep the block size
                out = np.concatenate([np.zeros(len(samples) - len(out), dtype=np.int16), out])
        return out if self.error is None else samples

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """An exception must not reach PortAudio's callback (it would stop the stream): keep it, pass audio on."""
        try:
            yield
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _measure(self, before: np.ndarray, after: np.ndarray) -> None:
        power_in = float(np.mean(before.astype(np.float32) ** 2))
        self.detector.add(self._far_now, power_in)
        # Only while the speaker plays right now: the caller's own turns (the agent silent) do not count.
        if self._far_now < _FAR_ACTIVE:
            return
        self._far_power += _SMOOTH * (self._far_now - self._far_power)
        self._in_power += _SMOOTH * (power_in - self._in_power)
        self._out_power += _SMOOTH * (float(np.mean(after.astype(np.float32) ** 2)) - self._out_power)

    def _frame(self, chunk: np.ndarray) -> Any:
        return self._rtc.AudioFrame(bytearray(chunk.tobytes()), WEBRTC_RATE, 1, CHUNK)
