"""Local audio: the microphone (or a WAV file) as an aiortc track, and a speaker playback buffer.

Everything the platform hears or says is 48 kHz mono int16 in 20 ms frames (960 samples): the
platform's `WEBRTC_RATE` and `FRAME_SAMPLES`; both tracks are the platform's paced track with the
app's mute, push-to-talk and hooks on top.
sounddevice callbacks run on PortAudio's thread; they only copy samples and hand them to the
asyncio loop (microphone) or take them from a locked buffer (speaker). sounddevice is imported
lazily, so a machine without PortAudio still opens the app (in text mode) with a clear message.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.echo_canceller import EchoCanceller
from platform_core import FRAME_SAMPLES, WEBRTC_RATE, AudioFileError, PacedAudioTrack, StudioError, read_audio

__all__ = ["AudioDeviceError", "GatedSource", "MicrophoneTrack", "SpeakerOutput"]

FrameHook = Callable[[np.ndarray, float], None]  # (int16 samples, monotonic time of the first sample)


class AudioDeviceError(StudioError):
    """An audio device problem explained: `message` says what and why, `hint` what to do."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise AudioDeviceError(
            f"Audio is unavailable: {exc}.",
            "Install PortAudio (Debian: apt-get install libportaudio2 libasound2-data), or use text mode "
            "or a WAV file as the microphone.",
        ) from exc
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    inputs: int
    outputs: int
    default_rate: float


def list_devices(rescan: bool = False) -> tuple[list[DeviceInfo], list[DeviceInfo]]:
    """(input devices, output devices). `rescan` re-reads the system (after plugging a device in)."""
    sd = _sounddevice()
    if rescan:
        # PortAudio lists devices only when initialised; re-initialise to see hot-plugged ones.
        sd._terminate()
        sd._initialize()
    devices = [
        DeviceInfo(i, d["name"], d["max_input_channels"], d["max_output_channels"], d["default_samplerate"])
        for i, d in enumerate(sd.query_devices())
    ]
    return [d for d in devices if d.inputs > 0], [d for d in devices if d.outputs > 0]


def _resolve(device: str | int | None, kind: str) -> str | int | None:
    """A device name or index as sounddevice takes it; raises AudioDeviceError when there is none."""
    inputs, outputs = list_devices()
    candidates = inputs if kind == "input" else outputs
    if not candidates:
        raise AudioDeviceError(
            f"No audio {kind} device was found.",
            "Connect a microphone/speaker (then Settings > Rescan devices), use a WAV file as the microphone,"
            " or type your turns in the text box.",
        )
    if device in (None, ""):
        return None
    if isinstance(device, int) or any(d.name == device for d in candidates):
        return device
    names = ", ".join(d.name for d in candidates)
    raise AudioDeviceError(
        f"The {kind} device {device!r} is not available (unplugged or renamed).",
        f"Pick another in Settings; available: {names}.",
    )


class GatedSource(PacedAudioTrack):
    """The app's outbound track: the platform's paced track with mute, push-to-talk and hooks.

    As built here it plays `samples` (a WAV file standing in for the microphone: `from_wav`), then
    silence; `MicrophoneTrack` takes its frames from the device instead.
    """

    def __init__(self, samples: np.ndarray | None = None, path: Path | None = None) -> None:
        super().__init__(samples)
        self.path = path  # the WAV file played, if any
        self.muted = False
        self.push_to_talk = False
        self.talking = False  # push-to-talk held
        self.on_frame: list[FrameHook] = []  # what is actually sent (after the gate), e.g. the recorder

    @classmethod
    def from_wav(cls, path: Path, *, lead_in_s: float = 0.0) -> GatedSource:
        """An audio file (WAV, FLAC, OGG, MP3) as the microphone, after `lead_in_s` of silence (reproducible QA)."""
        try:
            samples = read_audio(path)
        except AudioFileError as exc:
            raise AudioDeviceError(f"The audio file could not be read: {exc}", "Choose another file.") from exc
        return cls(np.concatenate([np.zeros(int(lead_in_s * WEBRTC_RATE), dtype=np.int16), samples]), path)

    @property
    def gate_open(self) -> bool:
        return not self.muted and (not self.push_to_talk or self.talking)

    def outgoing(self, samples: np.ndarray, t_first: float) -> np.ndarray:
        if not self.gate_open:
            samples = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        for hook in self.on_frame:
            hook(samples, t_first)
        return samples


class MicrophoneTrack(GatedSource):
    """The local microphone through sounddevice. If it stops delivering (unplugged), `recv` sends
    silence so the call survives, and `on_failure` is called once with an explanation."""

    STALL_S = 0.5

    def __init__(self, device: str | int | None = None, on_failure: Callable[[AudioDeviceError], None] | None = None):
        super().__init__()
        self.device = device
        self.on_failure = on_failure
        self.failed: AudioDeviceError | None = None
        self.echo_canceller: EchoCanceller | None = None  # set by the call when the speaker is its far end
        self._queue: asyncio.Queue[tuple[np.ndarray, float]] = asyncio.Queue(maxsize=25)
        self._event_loop = asyncio.get_running_loop()
        sd = _sounddevice()
        try:
            self._stream = sd.InputStream(
                samplerate=WEBRTC_RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES,
                device=_resolve(device, "input"),
                callback=self._callback,
                latency="low",
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"The microphone {device or '(default)'} could not be opened: {exc}.",
                "Check that it is connected and not used exclusively by another program, or pick another in Settings.",
            ) from exc

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's clock is CLOCK_MONOTONIC on Linux, but convert through "now" to be safe.
        age = max(0.0, time_info.currentTime - time_info.inputBufferAdcTime) if time_info.inputBufferAdcTime else 0.0
        t_first = time.monotonic() - age
        samples = indata[:, 0].copy()
        if self.echo_canceller is not None:  # here, on the device's thread, while its timing is exact
            samples = self.echo_canceller.near_end(samples, t_first)
        self._event_loop.call_soon_threadsafe(self._offer, samples, t_first)

    def _offer(self, samples: np.ndarray, t_first: float) -> None:
        if self._queue.full():  # the consumer stalled: drop the oldest rather than grow latency
            self._queue.get_nowait()
        self._queue.put_nowait((samples, t_first))

    def _fail(self, error: AudioDeviceError) -> None:
        if self.failed is None:
            self.failed = error
            if self.on_failure is not None:
                self.on_failure(error)

    async def next_frame(self) -> tuple[int, np.ndarray, float]:
        """The device's next block; real-time paced silence once it stops delivering."""
        try:
            samples, t_first = await asyncio.wait_for(self._queue.get(), self.STALL_S if self.failed is None else 0.02)
        except TimeoutError:
            self._fail(
                AudioDeviceError(
                    "The microphone stopped delivering audio (unplugged, or taken by another program).",
                    "The call goes on without it: type your turns in the text box, or pick another"
                    " microphone in Settings and call again.",
                )
            )
            pts = await self.pacer.next_frame()
            return pts, np.zeros(FRAME_SAMPLES, dtype=np.int16), time.monotonic()
        return self.pacer.take(), samples, t_first

    def stop(self) -> None:
        super().stop()
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # a vanished device may fail to close; nothing else to do
            pass


class SpeakerOutput:
    """Plays the agent's audio. `write` is called on the loop thread; PortAudio's thread pulls.

    `on_played(samples, t)` is called from the audio thread with each block and the monotonic time
    its first sample reaches the speaker (the mouth-to-ear meter listens there).
    """

    MAX_BUFFER_S = 2.0

    def __init__(self, device: str | int | None = None) -> None:
        self.device = device
        self.on_played: list[FrameHook] = []
        self._lock = threading.Lock()
        self._chunks: deque[np.ndarray] = deque()
        self._buffered = 0
        self.underruns = 0
        self.last_callback = time.monotonic()
        self.echo_canceller: EchoCanceller | None = None  # given every block played, as its far end
        sd = _sounddevice()
        try:
            self._stream = sd.OutputStream(
                samplerate=WEBRTC_RATE,
                channels=1,
                dtype="int16",
                blocksize=FRAME_SAMPLES // 2,
                device=_resolve(device, "output"),
                callback=self._callback,
                latency="low",
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"The speaker {device or '(default)'} could not be opened: {exc}.",
                "Check that it is connected, or pick another output device in Settings.",
            ) from exc

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            self._chunks.append(samples.astype(np.int16, copy=False))
            self._buffered += len(samples)
            while self._buffered > self.MAX_BUFFER_S * WEBRTC_RATE:  # far behind: drop the oldest audio
                self._buffered -= len(self._chunks.popleft())

    def clear(self) -> None:
        """Drop what is buffered (hang-up)."""
        with self._lock:
            self._chunks.clear()
            self._buffered = 0

    @property
    def alive(self) -> bool:
        """False when the device stopped pulling audio (unplugged)."""
        return bool(self._stream.active) and time.monotonic() - self.last_callback < 1.0

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self.last_callback = time.monotonic()
        out = np.zeros(frames, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk))
                out[filled : filled + take] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            self._buffered -= filled
        if 0 < filled < frames:
            self.underruns += 1
        outdata[:, 0] = out
        ahead = time_info.outputBufferDacTime - time_info.currentTime if time_info.outputBufferDacTime else 0.0
        t_first = self.last_callback + max(0.0, ahead)
        if self.echo_canceller is not None:
            self.echo_canceller.far_end(out, t_first)
        for hook in self.on_played:
            hook(out, t_first)

    def close(self) -> None:
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # a vanished device may fail to close
            pass
