"""The caller's side of the voice loop: caller audio -> VAD -> turn detection -> partial and final STT.

The listener turns the caller's track into turn signals and reports them through `RecognitionHooks`
(the conversation implements them): barge-in, speech started, a partial transcript, a turn held or
committed, a turn ended with its audio and the transcription already started at the caller's pause.

With `voice.turn_detection` "smart-turn" the turn model judges the caller's audio
`turn_judge_silence_s` (0.2 s) into their silence, after the pause's transcription (0.1 s) and
before the silence endpoint (0.3 s); `TurnHold` then commits the turn or holds it open for the rest
of the sentence. With little silence the model takes some complete sentences for unfinished ones,
never the reverse, so an "unfinished" is judged again with more silence (`turn_rejudge_silence_s`,
or at the endpoint) before a turn is held: a complete question commits at the endpoint, as with
silence alone, and only the rest pay for a second look. A held turn's continuation is judged on its own.
"""

from __future__ import annotations

import asyncio
import logging
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
from platform_core.events import TurnCommitReason
from platform_core.pipeline.turn_hold import Commit, Held, Judgement, TurnHold
from platform_core.pipeline.turns import TurnDetector, TurnSignal

PREROLL_S = 0.3  # audio kept before detected speech onset, so STT hears the first syllable

log = logging.getLogger(__name__)
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


@dataclass(frozen=True)
class SpeechWindow:
    """When the caller's utterance started and ended (monotonic seconds, at the platform)."""

    started_at: float
    ended_at: float
    speech_s: float = 0.0  # speech in it (its pauses not counted)


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
        """The caller has spoken long enough to pause the agent; their first speech frame reached the
        platform at `speech_arrived_at`."""
        ...

    def on_interrupting_speech(self, speech_s: float) -> None:
        """The caller has spoken `speech_s`: long enough to interrupt the agent (`interrupt_speech_s`)."""
        ...

    def on_speech_discarded(self, speech_s: float) -> None:
        """The caller's sound was too short to be a turn (a click, a breath)."""
        ...

    def on_speech_started(self) -> None: ...

    def on_partial_transcript(self, turn_id: int, text: str) -> None: ...

    def on_pause_transcript(self, transcript: asyncio.Future[str]) -> None:
        """The caller paused: `transcript` is the transcription of the turn so far (the turn's own if they
        stay silent until it ends)."""
        ...

    def on_turn_held(self, probability: float, wait_s: float, model_s: float, speech_ended_at: float) -> None:
        """The turn model judged the caller unfinished at the endpoint: the turn waits up to `wait_s`."""
        ...

    def on_turn_committed(
        self, reason: TurnCommitReason, probability: float | None, held_s: float, model_s: float | None
    ) -> None:
        """The end of the turn is decided (`on_turn_ended` follows at once)."""
        ...

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


@dataclass
class _Judging:
    """The turn model's judgement started at a pause, of the speech that ended at `speech_ended_at`."""

    speech_ended_at: float
    result: asyncio.Future[tuple[float, float]]
    first_look: bool  # judged with turn_judge_silence_s of silence: an "unfinished" is judged again


class Listener:
    """One conversation's listening: feed it the caller's track with `run`."""

    def __init__(self, engines: Engines, voice: VoiceLoopConfig, hooks: RecognitionHooks, spawn: Spawn) -> None:
        self.engines = engines
        self.voice = voice
        self.hooks = hooks
        self._spawn = spawn
        self.smart_turn = voice.turn_detection == "smart-turn" and engines.turn_model is not None
        if voice.turn_detection == "smart-turn" and engines.turn_model is None:
            log.warning("no turn model (%s): turns end on silence only", engines.turn_model_missing or "not loaded")
        self.detector = TurnDetector(
            threshold=voice.vad_threshold,
            min_speech_s=voice.min_speech_s,
            barge_in_speech_s=voice.barge_in_speech_s,
            interrupt_speech_s=voice.interrupt_speech_s,
            endpoint_silence_s=voice.endpoint_silence_s,
            pause_s=voice.pause_s,
            max_turn_s=voice.max_turn_s,
        )
        self._resampler = MonoResampler(STT_RATE)
        self._pending = np.zeros(0, dtype=np.int16)  # caller audio not yet a whole VAD block
        self._pending_since = 0.0  # when the first of the pending samples arrived
        self._recent: deque[tuple[float, Int16Array]] = deque()  # (processed at, VAD block)
        self._early: _EarlyTranscript | None = None
        self._judging: _Judging | None = None
        self._held_speech_s = 0.0  # the speech of a held turn so far (its pauses not counted)
        self.hold = TurnHold(
            threshold=voice.turn_complete_threshold, max_wait_s=voice.turn_max_wait_s, max_turn_s=voice.max_turn_s
        )
        self._partial: asyncio.Task[None] | None = None  # the words so far, for display
        self._partial_after_s = voice.partial_every_s
        # When the current utterance's first speech reached the platform: the arrival of the frame its
        # first VAD block starts in (not when the block was processed, which lags in a burst of frames).
        self._speech_arrived_at = 0.0

    async def run(self, track: MediaStreamTrack) -> None:
        vad = await asyncio.to_thread(self.engines.vad_factory)  # ~150 ms of model loading: off the loop
        block_s = vad.frame_samples / STT_RATE
        self._recent = deque(maxlen=int((self.voice.max_turn_s + self.voice.turn_max_wait_s + 2) / block_s))
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            arrived_at = time.monotonic()
            await self.hooks.on_caller_frame()
            if isinstance(frame, av.AudioFrame):
                self._hear(vad, self._resampler.resample_frame(frame), arrived_at)
        self.hold.cancel()
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
            self._maybe_judge(now)
            if (commit := self.hold.expired(now, speaking=self.detector.in_speech)) is not None:
                self._commit(commit)

    def _on_signal(self, signal: TurnSignal) -> None:
        if signal.kind == "barge_in":
            self.hooks.on_barge_in(self._speech_arrived_at)
        elif signal.kind == "interrupt":
            self.hooks.on_interrupting_speech(signal.speech_s)
        elif signal.kind == "speech_started":
            self.hooks.on_speech_started()
        elif signal.kind == "pause":
            self._on_pause(signal)
        elif signal.kind == "turn_ended":
            self._on_endpoint(signal)
        elif signal.kind == "speech_discarded" and not self.hold.held:
            self._partial_after_s = self.voice.partial_every_s
            self.hooks.on_speech_discarded(signal.speech_s)

    def _on_pause(self, signal: TurnSignal) -> None:
        """Transcribe now; if the caller stays silent the turn ends with the same words."""
        if self._early is not None:
            self._early.text.cancel()
        audio = self._utterance(self.hold.turn_start(signal.speech_started_at))
        self._early = _EarlyTranscript(signal.speech_ended_at, asyncio.ensure_future(self.engines.transcribe(audio)))
        self.hooks.on_pause_transcript(self._early.text)

    def _maybe_judge(self, now: float) -> None:
        """Ask the turn model `turn_judge_silence_s` into each silence, and again at
        `turn_rejudge_silence_s` if it said "unfinished" (with little silence it errs that way)."""
        detector = self.detector
        if not (self.smart_turn and detector.in_speech and detector.confirmed):
            return
        silence = now - detector.last_speech_end + 1e-9
        judging = self._judging
        if judging is None or judging.speech_ended_at != detector.last_speech_end:
            if silence >= self.voice.turn_judge_silence_s:
                self._judge_current(first_look=True)
        elif judging.first_look and silence >= self.voice.turn_rejudge_silence_s and self._unfinished(judging):
            self._judge_current(first_look=False)

    def _unfinished(self, judging: _Judging) -> bool:
        """A judgement that is in and says the turn is not complete."""
        if not judging.result.done():
            return False
        judgement = _judgement(judging.result)
        return judgement is not None and judgement.probability < self.hold.threshold

    def _judge(self, started_at: float, speech_ended_at: float, *, first_look: bool) -> _Judging:
        """The turn model's judgement of the speech from `started_at` (for a held turn: its continuation, the
        speech since the caller went on) until now. Given a held turn whole, with its pause inside, the
        model took even the finished ones for unfinished (docs/end-of-turn.md: "Lisbon?" after "Can you
        tell me the weather in" and a 0.8 s pause, 0.01 whole and 0.95 alone), so they waited out
        `turn_max_wait_s`."""
        audio = self._utterance(started_at)
        return _Judging(speech_ended_at, asyncio.ensure_future(self.engines.turn_completion(audio)), first_look)

    def _judge_current(self, *, first_look: bool) -> None:
        if self._judging is not None:
            self._judging.result.cancel()
        detector = self.detector
        self._judging = self._judge(detector.speech_start, detector.last_speech_end, first_look=first_look)

    def _on_endpoint(self, signal: TurnSignal) -> None:
        """The silence endpoint (or the turn's length limit): commit, or hold for the turn model."""
        judging, self._judging = self._judging, None
        forced = signal.t - signal.speech_ended_at < self.detector.endpoint_silence_s - 1e-6
        if not self.smart_turn or forced:
            if judging is not None:
                judging.result.cancel()
            self._decide(signal, None, forced=forced)
            return
        if (
            judging is None
            or judging.speech_ended_at != signal.speech_ended_at
            or (judging.first_look and self._unfinished(judging))
        ):
            if judging is not None:
                judging.result.cancel()
            # Judged (again) with the endpoint's silence.
            judging = self._judge(signal.speech_started_at, signal.speech_ended_at, first_look=False)
        if judging.result.done():
            self._decide(signal, _judgement(judging.result))
        else:  # the model is still at it (it usually answers before the endpoint)
            self._spawn(self._decide_when_judged(signal, judging))

    async def _decide_when_judged(self, signal: TurnSignal, judging: _Judging) -> None:
        await asyncio.wait([judging.result])
        if judging.first_look and self._unfinished(judging):  # judged again with the endpoint's silence
            judging = self._judge(signal.speech_started_at, signal.speech_ended_at, first_look=False)
            await asyncio.wait([judging.result])
        self._decide(signal, _judgement(judging.result))

    def _decide(self, signal: TurnSignal, judgement: Judgement | None, *, forced: bool = False) -> None:
        outcome = self.hold.at_endpoint(
            signal.speech_started_at, signal.speech_ended_at, time.monotonic(), judgement, forced=forced
        )
        self._held_speech_s += signal.speech_s
        if isinstance(outcome, Held):
            self.hooks.on_turn_held(outcome.probability, outcome.wait_s, outcome.model_s, outcome.speech_ended_at)
        else:
            self._commit(outcome)

    def _commit(self, commit: Commit) -> None:
        self._partial_after_s = self.voice.partial_every_s
        early, self._early = self._early, None
        transcript = None
        if early is not None and early.speech_ended_at == commit.ended_at:
            transcript = early.text  # no speech since the pause: its transcription is the turn's
        elif early is not None:
            early.text.cancel()
        self.hooks.on_turn_committed(commit.reason, commit.probability, commit.held_s, commit.model_s)
        speech = SpeechWindow(commit.started_at, commit.ended_at, self._held_speech_s)
        self._held_speech_s = 0.0
        self.hooks.on_turn_ended(speech, self._utterance(commit.started_at), transcript)

    def _maybe_transcribe_partial(self, now: float) -> None:
        detector = self.detector
        started = self.hold.turn_start(detector.speech_start)
        speaking_for = now - started if detector.confirmed else 0.0
        if not self._partial_after_s or speaking_for < self._partial_after_s:
            return
        if self._partial is not None and not self._partial.done():
            return
        self._partial_after_s = speaking_for + self.voice.partial_every_s
        self._partial = self._spawn(self._transcribe_partial(self._utterance(started)))

    async def _transcribe_partial(self, audio: Float32Array) -> None:
        turn_id = self.hooks.next_turn_id
        text = await self.engines.transcribe_partial(audio)
        # None: the worker was busy, or the turn's own transcription took over.
        if text:
            self.hooks.on_partial_transcript(turn_id, text)

    def _utterance(self, started_at: float) -> Float32Array:
        start = started_at - PREROLL_S
        return to_float32(np.concatenate([c for t, c in self._recent if t >= start]))


def _judgement(result: asyncio.Future[tuple[float, float]]) -> Judgement | None:
    """The turn model's answer; None (the turn then ends on silence) when it failed."""
    if result.cancelled():
        return None
    if (exc := result.exception()) is not None:
        log.warning("the turn model failed, the turn ends on silence: %r", exc)
        return None
    probability, model_s = result.result()
    return Judgement(probability, model_s)
