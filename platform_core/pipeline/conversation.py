"""One conversation, isolated: its own history, tasks, turn detection, playback and cancellation.

Caller audio -> VAD -> endpointing -> (Responder: STT -> tools -> LLM -> clauses -> TTS) -> playback.
Barge-in: caller speech while a response is in progress stops the agent's audio at once, cancels
the rest of the answer, and keeps in the history only the words that were played.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import STT_RATE, Float32Array, Int16Array, MonoResampler, level, to_float32
from platform_core.bus import EventBus
from platform_core.config import PlatformConfig
from platform_core.engines.base import ChatMessage
from platform_core.engines.runner import Engines
from platform_core.events import (
    AgentSpeakingChanged,
    AgentTextDelta,
    AudioLevel,
    ConversationState,
    ConversationStateChanged,
    ErrorOccurred,
    MetricMeasured,
    TranscriptPartial,
    TurnCompleted,
    TurnStarted,
    VadStateChanged,
)
from platform_core.pipeline.responder import FIRST_TOOLS_WAIT_S, Responder
from platform_core.pipeline.tools import ToolRouter
from platform_core.pipeline.turn import Turn
from platform_core.pipeline.turns import TurnDetector
from platform_core.transport.agent_track import AgentAudioTrack, PlaybackQueue, PlayedSegment, Segment

log = logging.getLogger(__name__)

GREETING_TURN_ID = 0  # caller turns count from 1
PREROLL_S = 0.3  # audio kept before detected speech onset, so STT hears the first syllable


class Conversation:
    def __init__(
        self,
        *,
        conversation_id: str,
        agent_id: str | None,
        customer_id: str,
        engines: Engines,
        router: ToolRouter,
        bus: EventBus,
        config: PlatformConfig,
    ) -> None:
        self.conversation_id = conversation_id
        self.agent_id = agent_id
        self.customer_id = customer_id
        self.bus = bus
        self.config = config
        self.router = router
        self.state: ConversationState = "connecting"
        self.history: list[ChatMessage] = []
        self.queue = PlaybackQueue()
        self.queue.on_frame = self._on_agent_frame
        self.queue.on_segment_done = self._on_segment_done
        self.track = AgentAudioTrack(self.queue)
        self.responder = Responder(self, engines)
        self._engines = engines
        self._next_turn_id = 1
        self._turns: dict[int, Turn] = {}
        self._current: tuple[Turn, asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._agent_speaking = False
        self._ended = asyncio.Event()
        self._publish_state("connecting")

    # --- lifecycle --------------------------------------------------------------------------------

    async def activate(self) -> None:
        """The caller's media is flowing: tell the agents, greet, listen."""
        if self.state != "connecting":
            return
        self._publish_state("active")
        await self.router.conversation_started(self.conversation_id, self.agent_id, self.customer_id)
        self._spawn(self._warm_up())
        greeting = self.config.profile_for(self.agent_id).greeting
        if greeting:
            self.history.append(ChatMessage("assistant", greeting))
            # Turn 0: the agent's words before the caller's first turn, for transcripts and logs.
            self.bus.publish(AgentTextDelta(conversation_id=self.conversation_id, turn_id=GREETING_TURN_ID,
                                            text=greeting))
            self._spawn(self.responder.speak_text(greeting, turn=None))

    async def _warm_up(self) -> None:
        """Fill the LLM's prompt cache while the caller starts talking: the reply's prefix at once, the
        tool-choice prefix as soon as the customer's agents have registered tools for this conversation
        (also without an agent id: a customer's agents serve its calls). A turn already running has
        warmed what it needs."""
        if self._current is None:
            await self.responder.warm_up([], reply=True)
        if not (self.agent_id or self.router.has_agents(self.conversation_id)):
            return
        tools = await self.router.wait_for_tools(self.conversation_id, FIRST_TOOLS_WAIT_S)
        if tools and self._current is None:
            await self.responder.warm_up(tools, reply=False)

    async def close(self, reason: str = "hung up") -> None:
        if self.state == "ended":
            return
        self._interrupt("conversation ended")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.track.stop()
        self._publish_state("ended", reason)
        await self.router.conversation_ended(self.conversation_id)
        self._ended.set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def _publish_state(self, state: ConversationState, reason: str = "") -> None:
        self.state = state
        self.bus.publish(ConversationStateChanged(
            conversation_id=self.conversation_id, agent_id=self.agent_id, state=state, reason=reason))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("conversation %s task failed", self.conversation_id, exc_info=exc)
            self.report_error("voice loop", f"{type(exc).__name__}: {exc}",
                              "The conversation goes on; see the log for details.")

    def report_error(self, where: str, message: str, hint: str = "") -> None:
        self.bus.publish(ErrorOccurred(where=where, message=message, hint=hint,
                                       conversation_id=self.conversation_id))

    # --- caller audio -----------------------------------------------------------------------------

    def attach_caller(self, track: MediaStreamTrack) -> None:
        self._spawn(self._listen(track))

    async def _listen(self, track: MediaStreamTrack) -> None:
        vcfg = self.config.voice
        vad = await asyncio.to_thread(self._engines.vad_factory)  # ~150 ms of model loading: off the loop
        detector = TurnDetector(
            threshold=vcfg.vad_threshold,
            min_speech_s=vcfg.min_speech_s,
            barge_in_speech_s=vcfg.barge_in_speech_s,
            endpoint_silence_s=vcfg.endpoint_silence_s,
            pause_s=vcfg.pause_s,
            max_turn_s=vcfg.max_turn_s,
        )
        block = vad.frame_samples
        block_s = block / STT_RATE
        resampler = MonoResampler(STT_RATE)
        history: deque[tuple[float, Int16Array]] = deque(maxlen=int((vcfg.max_turn_s + 2) / block_s))
        pending = np.zeros(0, dtype=np.int16)
        # Transcription started at a pause: (the speech end it covers, its task).
        early: tuple[float, asyncio.Future[str]] | None = None
        partial: asyncio.Task[None] | None = None  # the words so far, for display
        partial_after_s = vcfg.partial_every_s

        def utterance(started_at: float) -> Float32Array:
            start = started_at - PREROLL_S
            return to_float32(np.concatenate([c for t, c in history if t >= start]))

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            if self.state == "connecting":
                await self.activate()
            if not isinstance(frame, av.AudioFrame):
                continue
            pcm = resampler.resample_frame(frame)
            rms, peak = level(pcm)
            self.bus.publish(AudioLevel(conversation_id=self.conversation_id, source="caller",
                                        rms_dbfs=rms, peak=peak))
            pending = np.concatenate([pending, pcm])
            while len(pending) >= block:
                chunk, pending = pending[:block], pending[block:]
                now = time.monotonic()
                history.append((now, chunk))
                probability = vad.speech_probability(to_float32(chunk))
                speaking_for = now - detector.speech_start if detector.confirmed else 0.0
                if partial_after_s and speaking_for >= partial_after_s and (partial is None or partial.done()):
                    partial_after_s = speaking_for + vcfg.partial_every_s
                    partial = self._spawn(self._transcribe_partial(utterance(detector.speech_start)))
                for signal in detector.feed(probability, now, block_s):
                    if signal.kind == "barge_in":
                        self._interrupt("caller spoke", speech_started_at=signal.speech_started_at)
                    elif signal.kind == "speech_started":
                        self.bus.publish(VadStateChanged(conversation_id=self.conversation_id, speaking=True))
                    elif signal.kind == "pause":
                        # Transcribe now; if the caller stays silent the turn ends with the same words.
                        if early is not None:
                            early[1].cancel()
                        audio = utterance(signal.speech_started_at)
                        early = (signal.speech_ended_at, asyncio.ensure_future(self._engines.transcribe(audio)))
                    if signal.kind in ("turn_ended", "speech_discarded"):
                        partial_after_s = vcfg.partial_every_s
                    if signal.kind == "turn_ended":
                        self.bus.publish(VadStateChanged(conversation_id=self.conversation_id, speaking=False))
                        transcript = None
                        if early is not None and early[0] == signal.speech_ended_at:
                            transcript = early[1]
                        elif early is not None:
                            early[1].cancel()
                        early = None
                        self._start_turn(signal.speech_ended_at, utterance(signal.speech_started_at),
                                         transcript=transcript)
        if self.state != "ended":
            self._spawn(self.close("caller's audio ended"))

    async def _transcribe_partial(self, audio: Float32Array) -> None:
        turn_id = self._next_turn_id
        text = await self._engines.transcribe_partial(audio)
        # None: the worker was busy, or the turn's own transcription took over. A turn that has
        # started meanwhile has its final text already.
        if text and turn_id == self._next_turn_id:
            self.bus.publish(TranscriptPartial(conversation_id=self.conversation_id, turn_id=turn_id, text=text))

    # --- turns ------------------------------------------------------------------------------------

    def submit_text(self, text: str) -> None:
        """A typed turn: answered exactly like a spoken one, without STT."""
        self._interrupt("caller typed")
        if self.state == "connecting":  # typed before any audio arrived: the agents must hear of us first
            self._spawn(self._typed_turn_after_activation(time.monotonic(), text.strip()))
            return
        self._start_turn(time.monotonic(), None, text=text.strip())

    async def _typed_turn_after_activation(self, typed_at: float, text: str) -> None:
        await self.activate()
        self._start_turn(typed_at, None, text=text)

    def _start_turn(self, speech_ended_at: float, audio: Float32Array | None, text: str = "",
                    transcript: asyncio.Future[str] | None = None) -> None:
        self._interrupt("new turn")
        turn = Turn(self._next_turn_id, speech_ended_at, audio=audio, user_text=text, transcript=transcript)
        self._next_turn_id += 1
        now = time.monotonic()
        self.bus.publish(TurnStarted(conversation_id=self.conversation_id, turn_id=turn.turn_id,
                                     speech_ended_at=speech_ended_at))
        if audio is not None:
            self.record_metric(turn, "end_of_turn_delay", now - speech_ended_at)
        self._turns[turn.turn_id] = turn
        task = self._spawn(self._run_turn(turn))
        self._current = (turn, task)

    async def _run_turn(self, turn: Turn) -> None:
        try:
            await self.responder.respond(turn)
            await turn.drained.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("turn %s failed", turn.turn_id)
            self.report_error("voice loop", f"turn {turn.turn_id} failed: {type(exc).__name__}: {exc}",
                              "The conversation goes on; try the turn again.")
        if self._current and self._current[0] is turn:
            self._current = None
        self._complete(turn, interrupted=False)

    def _interrupt(self, reason: str, speech_started_at: float | None = None) -> None:
        if self._current is None:
            return
        turn, task = self._current
        self._current = None
        cut = self.queue.clear(turn.turn_id)
        task.cancel()
        if speech_started_at is not None and cut:  # some of the answer's audio was still to play
            # From the caller's first speech frame reaching the platform to the agent's audio being cut.
            self.record_metric(turn, "barge_in_delay", time.monotonic() - speech_started_at)
        log.info("turn %s interrupted: %s", turn.turn_id, reason)
        self._complete(turn, interrupted=True, cut=cut)

    def _complete(self, turn: Turn, *, interrupted: bool, cut: list[PlayedSegment] | None = None) -> None:
        if self._turns.pop(turn.turn_id, None) is None:
            return  # already completed
        agent_text = turn.played_text(cut)
        if turn.user_text and agent_text:
            self.history.append(ChatMessage("assistant", agent_text))
        self.bus.publish(TurnCompleted(
            conversation_id=self.conversation_id, turn_id=turn.turn_id, user_text=turn.user_text,
            agent_text=agent_text, interrupted=interrupted, metrics=dict(turn.metrics)))

    def record_metric(self, turn: Turn, name: str, value: float) -> None:
        turn.metrics[name] = value
        self.bus.publish(MetricMeasured(conversation_id=self.conversation_id, turn_id=turn.turn_id,
                                        name=name, value=value))

    # --- agent audio ------------------------------------------------------------------------------

    def play(self, turn: Turn | None, text: str, pcm: Int16Array) -> None:
        """Queue one synthesized clause for playback."""
        segment = Segment(text=text, pcm=pcm, turn_id=turn.turn_id if turn else 0)
        if turn is not None:
            turn.segment_enqueued()
            if turn.first_audio_at is None:
                segment.on_first_frame = self._first_audio_callback(turn)
        self.queue.enqueue(segment)

    def _first_audio_callback(self, turn: Turn) -> Callable[[float], None]:
        def on_first_frame(t: float) -> None:
            if turn.first_audio_at is None:
                turn.first_audio_at = t
                self.record_metric(turn, "e2e_latency", t - turn.speech_ended_at)
        return on_first_frame

    def _on_segment_done(self, segment: Segment) -> None:
        turn = self._turns.get(segment.turn_id)
        if turn is not None:
            turn.segment_played(segment.text)

    def _on_agent_frame(self, pcm: Int16Array, had_audio: bool) -> None:
        rms, peak = level(pcm)
        self.bus.publish(AudioLevel(conversation_id=self.conversation_id, source="agent",
                                    rms_dbfs=rms, peak=peak))
        speaking = had_audio or self.queue.busy
        if speaking != self._agent_speaking:
            self._agent_speaking = speaking
            self.bus.publish(AgentSpeakingChanged(conversation_id=self.conversation_id, speaking=speaking))
