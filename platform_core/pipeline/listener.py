"""The caller's side of the voice loop: caller audio -> VAD -> turn detection -> partial and final STT.

The listener turns the caller's track into turn signals and reports them through `RecognitionHooks`
(the conversation implements them): barge-in, speech started, a partial transcript, a turn ended
with its audio and the transcription already started at the caller's pause.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import STT_RATE, Float32Array, Int16Array, MonoResampler, level, to_float32
from platform_core.config import VoiceLoopConfig
from platform_core.engines.base import VoiceActivityDetector
from platform_core.engines.runner import Engines
from platform_core.pipeline.turns import TurnDetector, TurnSignal

PREROLL_S = 0.3  # audio kept before detected speech onset, so STT hears the first syllable

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass(frozen=True)
class SpeechWindow:
    """When the caller's utterance started and ended (monotonic seconds, at the platform)."""

    started_at: float
    ended_at: float


class RecognitionHooks(Protocol):
    """What the listener tells the conversation."""

    @property
    def next_turn_id(self) -> int:
        """The id the next turn will get (partial transcripts are shown under it)."""
        ...

    async def on_caller_frame(self) -> None:
        """A frame of the caller's media arrived (the first one means the call is up)."""
        ...

    def on_caller_level(self, rms_dbfs: float, peak: float) -> None: ...

    def on_barge_in(self, speech_arrived_at: float) -> None:
        """The caller has spoken long enough to interrupt the agent; their first speech frame reached
        the platform at `speech_arrived_at`."""
        ...

    def on_speech_started(self) -> None: ...

    def on_partial_transcript(self, turn_id: int, text: str) -> None: ...

    def on_turn_ended(self, speech: SpeechWindow, audio: Float32Array, transcript: asyncio.Future[str] | None) -> None:
        """The caller's turn is over; `transcript`, if given, is its transcription (started at the pause)."""
        ...

    async def on_caller_gone(self) -> None:
        """The caller's audio ended."""
        ...


@dataclass
class _EarlyTranscript:
    """Transcription started at a pause, for the speech that ended at `speech_ended_at`."""

    speech_ended_at: float
    text: asyncio.Future[str]


class Listener:
    """One conversation's listening: feed it the caller's track with `run`."""

    def __init__(self, engines: Engines, voice: VoiceLoopConfig, hooks: RecognitionHooks, spawn: Spawn) -> None:
        self.engines = engines
        self.voice = voice
        self.hooks = hooks
        self._spawn = spawn
        self.detector = TurnDetector(
            threshold=voice.vad_threshold,
            min_speech_s=voice.min_speech_s,
            barge_in_speech_s=voice.barge_in_speech_s,
            endpoint_silence_s=voice.endpoint_silence_s,
            pause_s=voice.pause_s,
            max_turn_s=voice.max_turn_s,
        )
        self._resampler = MonoResampler(STT_RATE)
        self._pending = np.zeros(0, dtype=np.int16)  # caller audio not yet a whole VAD block
        self._pending_since = 0.0  # when the first of the pending samples arrived
        self._recent: deque[tuple[float, Int16Array]] = deque()  # (processed at, VAD block)
        self._early: _EarlyTranscript | None = None
        self._partial: asyncio.Task[None] | None = None  # the words so far, for display
        self._partial_after_s = voice.partial_every_s
        # When the current utterance's first speech reached the platform: the arrival of the frame its
        # first VAD block starts in (not when the block was processed, which lags in a burst of frames).
        self._speech_arrived_at = 0.0

    async def run(self, track: MediaStreamTrack) -> None:
        vad = await asyncio.to_thread(self.engines.vad_factory)  # ~150 ms of model loading: off the loop
        block_s = vad.frame_samples / STT_RATE
        self._recent = deque(maxlen=int((self.voice.max_turn_s + 2) / block_s))
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            arrived_at = time.monotonic()
            await self.hooks.on_caller_frame()
            if isinstance(frame, av.AudioFrame):
                self._hear(vad, self._resampler.resample_frame(frame), arrived_at)
        await self.hooks.on_caller_gone()

    def _hear(self, vad: VoiceActivityDetector, pcm: Int16Array, arrived_at: float) -> None:
        """One frame of caller audio: its level, then every VAD block it completes."""
        self.hooks.on_caller_level(*level(pcm))
        block = vad.frame_samples
        if not len(self._pending):
            self._pending_since = arrived_at
        self._pending = np.concatenate([self._pending, pcm])
        while len(self._pending) >= block:
            chunk, self._pending = self._pending[:block], self._pending[block:]
            # A block starts in an earlier frame or in this one; what is left over is from this frame
            # (less than a block was pending before it).
            chunk_arrived_at, self._pending_since = self._pending_since, arrived_at
            now = time.monotonic()
            self._recent.append((now, chunk))
            probability = vad.speech_probability(to_float32(chunk))
            self._maybe_transcribe_partial(now)
            was_in_speech = self.detector.in_speech
            signals = self.detector.feed(probability, now, block / STT_RATE)
            if self.detector.in_speech and not was_in_speech:
                self._speech_arrived_at = chunk_arrived_at
            for signal in signals:
                self._on_signal(signal)

    def _on_signal(self, signal: TurnSignal) -> None:
        if signal.kind == "barge_in":
            self.hooks.on_barge_in(self._speech_arrived_at)
        elif signal.kind == "speech_started":
            self.hooks.on_speech_started()
        elif signal.kind == "pause":
            self._on_pause(signal)
        elif signal.kind == "turn_ended":
            self._partial_after_s = self.voice.partial_every_s
            self._on_turn_ended(signal)
        elif signal.kind == "speech_discarded":
            self._partial_after_s = self.voice.partial_every_s

    def _on_pause(self, signal: TurnSignal) -> None:
        """Transcribe now; if the caller stays silent the turn ends with the same words."""
        if self._early is not None:
            self._early.text.cancel()
        audio = self._utterance(signal.speech_started_at)
        self._early = _EarlyTranscript(signal.speech_ended_at, asyncio.ensure_future(self.engines.transcribe(audio)))

    def _on_turn_ended(self, signal: TurnSignal) -> None:
        early, self._early = self._early, None
        transcript = None
        if early is not None and early.speech_ended_at == signal.speech_ended_at:
            transcript = early.text  # no speech since the pause: its transcription is the turn's
        elif early is not None:
            early.text.cancel()
        speech = SpeechWindow(signal.speech_started_at, signal.speech_ended_at)
        self.hooks.on_turn_ended(speech, self._utterance(signal.speech_started_at), transcript)

    def _maybe_transcribe_partial(self, now: float) -> None:
        detector = self.detector
        speaking_for = now - detector.speech_start if detector.confirmed else 0.0
        if not self._partial_after_s or speaking_for < self._partial_after_s:
            return
        if self._partial is not None and not self._partial.done():
            return
        self._partial_after_s = speaking_for + self.voice.partial_every_s
        self._partial = self._spawn(self._transcribe_partial(self._utterance(detector.speech_start)))

    async def _transcribe_partial(self, audio: Float32Array) -> None:
        turn_id = self.hooks.next_turn_id
        text = await self.engines.transcribe_partial(audio)
        # None: the worker was busy, or the turn's own transcription took over.
        if text:
            self.hooks.on_partial_transcript(turn_id, text)

    def _utterance(self, started_at: float) -> Float32Array:
        start = started_at - PREROLL_S
        return to_float32(np.concatenate([c for t, c in self._recent if t >= start]))
