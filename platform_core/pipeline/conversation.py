"""One conversation, isolated: its own history, tasks, turn detection, playback and cancellation.

Caller audio -> Listener (VAD, endpointing, STT) -> turns -> Responder (tools -> LLM -> clauses -> TTS)
-> Playback -> the agent's track.
Barge-in: caller speech over the agent pauses its audio at once (`floor.py`); enough speech makes it an
interruption, which cancels the rest of the answer and keeps in the history only the words that were
played; less (a backchannel, a cough) resumes the answer where it paused and is not a turn.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from platform_core.audio import Float32Array
from platform_core.bus import EventBus
from platform_core.config import PlatformConfig
from platform_core.engines.base import ChatMessage
from platform_core.engines.runner import Engines
from platform_core.events import (
    AgentTextDelta,
    AudioLevel,
    ConversationState,
    ConversationStateChanged,
    ErrorOccurred,
    MetricMeasured,
    MetricName,
    TranscriptPartial,
    TurnCommitReason,
    TurnCommitted,
    TurnCompleted,
    TurnHeld,
    TurnStarted,
    VadStateChanged,
)
from platform_core.pipeline.floor import Floor
from platform_core.pipeline.interruptions import InterruptionRules
from platform_core.pipeline.listener import Listener, SpeechWindow
from platform_core.pipeline.playback import Playback
from platform_core.pipeline.responder import FIRST_TOOLS_WAIT_S, Responder
from platform_core.pipeline.tools import ToolRouter
from platform_core.pipeline.turn import PlayedSegment, Turn, heard_text
from platform_core.transport.agent_track import AgentAudioTrack

log = logging.getLogger(__name__)

GREETING_TURN_ID = 0  # caller turns count from 1


class Conversation:
    """One call's conversation: its turns, their cancellation and barge-in. It implements the
    listener's RecognitionHooks; the responder and the playback get only the parts they need."""

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
        self.playback = Playback(conversation_id, record_metric=self.record_metric, publish=bus.publish)
        self.track = AgentAudioTrack(self.playback.next_frame)
        self.responder = Responder(
            conversation_id=conversation_id,
            agent_id=agent_id,
            engines=engines,
            router=router,
            config=config,
            history=self.history,
            playback=self.playback,
            record_metric=self.record_metric,
            publish=bus.publish,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.listener = Listener(engines, config.voice, self, self._spawn)
        self._next_turn_id = 1
        self._turns: dict[int, Turn] = {}
        self._current: tuple[Turn, asyncio.Task[None]] | None = None
        self._ended = asyncio.Event()
        voice = config.voice
        rules = InterruptionRules(
            voice.interrupt_speech_s, voice.interrupt_min_words, voice.false_interruption_timeout_s
        )
        self.floor = Floor(
            conversation_id, rules, playback=self.playback, publish=bus.publish, on_interrupted=self._on_interrupted
        )
        self._greeting: tuple[int, asyncio.Task[None]] | None = None  # its index in the history, its speech
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
            self._greeting = (len(self.history), self._spawn(self.responder.speak_text(greeting, turn=None)))
            self.history.append(ChatMessage("assistant", greeting))
            # Turn 0: the agent's words before the caller's first turn, for transcripts and logs.
            self.bus.publish(
                AgentTextDelta(conversation_id=self.conversation_id, turn_id=GREETING_TURN_ID, text=greeting)
            )

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
        self.responder.drop_early()
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
        self.bus.publish(
            ConversationStateChanged(
                conversation_id=self.conversation_id, agent_id=self.agent_id, state=state, reason=reason
            )
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("conversation %s task failed", self.conversation_id, exc_info=exc)
            self.report_error(
                "voice loop", f"{type(exc).__name__}: {exc}", "The conversation goes on; see the log for details."
            )

    def report_error(self, where: str, message: str, hint: str = "") -> None:
        self.bus.publish(ErrorOccurred(where=where, message=message, hint=hint, conversation_id=self.conversation_id))

    # --- caller audio (RecognitionHooks, called by the listener) -----------------------------------

    def attach_caller(self, track: MediaStreamTrack) -> None:
        self._spawn(self.listener.run(track))

    @property
    def next_turn_id(self) -> int:
        return self._next_turn_id

    async def on_caller_frame(self) -> None:
        if self.state == "connecting":
            await self.activate()

    def on_caller_level(self, rms_dbfs: float, peak: float) -> None:
        self.bus.publish(
            AudioLevel(conversation_id=self.conversation_id, source="caller", rms_dbfs=rms_dbfs, peak=peak)
        )

    def on_barge_in(self, speech_arrived_at: float) -> None:
        speaking = self._speaking_turn_id()
        if speaking is None:  # an answer not audible yet: the caller goes on with their turn
            self._interrupt("caller spoke", speech_arrived_at=speech_arrived_at)
        else:
            self.floor.speech_began(speech_arrived_at, speaking)

    def on_interrupting_speech(self, speech_s: float) -> None:
        self.floor.speech_progress(speech_s)

    def on_speech_discarded(self, speech_s: float) -> None:
        self.floor.speech_ended(speech_s)

    def _speaking_turn_id(self) -> int | None:
        """The turn whose answer the caller hears now (GREETING_TURN_ID: the greeting), or None."""
        if self._current is not None:
            turn = self._current[0]
            audible = turn.first_audio_at is not None or self.playback.queue.has(turn.turn_id)
            return turn.turn_id if audible else None
        if self._greeting is not None and (not self._greeting[1].done() or self.playback.queue.has(GREETING_TURN_ID)):
            return GREETING_TURN_ID
        return None

    def _on_interrupted(self, turn_id: int, speech_arrived_at: float, silenced_at: float) -> None:
        if turn_id == GREETING_TURN_ID:
            self._cut_greeting()
        else:
            self._interrupt("caller interrupted", speech_arrived_at=speech_arrived_at, silenced_at=silenced_at)

    def _cut_greeting(self) -> None:
        """The caller talked over the greeting: the history keeps the words they heard of it."""
        if self._greeting is None:
            return
        (index, task), self._greeting = self._greeting, None
        task.cancel()
        heard = heard_text([], self.playback.cut(None))
        if index < len(self.history) and self.history[index].role == "assistant":
            if heard:
                self.history[index] = ChatMessage("assistant", heard)
            else:
                del self.history[index]

    def on_speech_started(self) -> None:
        # Speech after a held turn's pause: the reply started for its first words would run on unseen.
        self.responder.drop_early()
        self.bus.publish(VadStateChanged(conversation_id=self.conversation_id, speaking=True))

    def on_partial_transcript(self, turn_id: int, text: str) -> None:
        # A turn that has started meanwhile has its final text already.
        if turn_id == self._next_turn_id:
            self.bus.publish(TranscriptPartial(conversation_id=self.conversation_id, turn_id=turn_id, text=text))
            self.floor.words_heard(len(text.split()))

    def on_pause_transcript(self, transcript: asyncio.Future[str]) -> None:
        if self._current is None:  # the agent is not answering: its LLM work for the next turn may start
            transcript.add_done_callback(self._start_early)

    def _start_early(self, transcript: asyncio.Future[str]) -> None:
        if transcript.cancelled() or transcript.exception() is not None:
            return  # the caller went on speaking (or the turn's own transcription reports the failure)
        if self._current is None and self.state == "active":
            self.responder.start_early(transcript.result())

    def on_turn_held(self, probability: float, wait_s: float, model_s: float, speech_ended_at: float) -> None:
        self.bus.publish(
            TurnHeld(
                conversation_id=self.conversation_id,
                probability=round(probability, 4),
                wait_s=wait_s,
                model_s=round(model_s, 4),
                speech_ended_at=speech_ended_at,
            )
        )

    def on_turn_committed(
        self, reason: TurnCommitReason, probability: float | None, held_s: float, model_s: float | None
    ) -> None:
        self.bus.publish(
            TurnCommitted(
                conversation_id=self.conversation_id,
                reason=reason,
                probability=None if probability is None else round(probability, 4),
                held_s=held_s,
                model_s=None if model_s is None else round(model_s, 4),
            )
        )

    def on_turn_ended(self, speech: SpeechWindow, audio: Float32Array, transcript: asyncio.Future[str] | None) -> None:
        self.bus.publish(VadStateChanged(conversation_id=self.conversation_id, speaking=False))
        if self.floor.needs_words:  # long enough to interrupt: its words decide
            self._spawn(self._judge_words(speech, audio, transcript))
        elif self.floor.speech_ended(speech.speech_s):
            self._start_turn(speech.ended_at, audio, transcript=transcript)
        elif transcript is not None:
            transcript.cancel()  # a backchannel over the agent: no turn of its own

    async def _judge_words(
        self, speech: SpeechWindow, audio: Float32Array, transcript: asyncio.Future[str] | None
    ) -> None:
        text = await (transcript or asyncio.ensure_future(self.responder.engines.transcribe(audio)))
        if self.floor.speech_ended(speech.speech_s, len(text.split())):
            done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            done.set_result(text)
            self._start_turn(speech.ended_at, audio, transcript=done)

    async def on_caller_gone(self) -> None:
        if self.state != "ended":
            self._spawn(self.close("caller's audio ended"))

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

    def _start_turn(
        self,
        speech_ended_at: float,
        audio: Float32Array | None,
        text: str = "",
        transcript: asyncio.Future[str] | None = None,
    ) -> None:
        self._interrupt("new turn")
        turn = Turn(self._next_turn_id, speech_ended_at, audio=audio, user_text=text, transcript=transcript)
        self._next_turn_id += 1
        now = time.monotonic()
        self.bus.publish(
            TurnStarted(conversation_id=self.conversation_id, turn_id=turn.turn_id, speech_ended_at=speech_ended_at)
        )
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
            self.report_error(
                "voice loop",
                f"turn {turn.turn_id} failed: {type(exc).__name__}: {exc}",
                "The conversation goes on; try the turn again.",
            )
        if self._current and self._current[0] is turn:
            self._current = None
        self._complete(turn, interrupted=False)

    def _interrupt(self, reason: str, speech_arrived_at: float | None = None, silenced_at: float | None = None) -> None:
        if self.floor.paused:  # a typed turn or the end of the call decides for the paused agent
            self.floor.release()
        if self._current is None:
            return
        turn, task = self._current
        self._current = None
        cut = self.playback.cut(turn)
        task.cancel()
        # Its tool calls end now, not when the task unwinds: the agent is told and stops the tool.
        self.router.cancel_tool_calls(self.conversation_id, turn_id=turn.turn_id, reason=f"interrupted: {reason}")
        # The agent was answering aloud: audio still queued, or some played and more to come (between
        # two clauses the queue is empty while the next one is synthesized: still a barge-in).
        if speech_arrived_at is not None and (cut or turn.first_audio_at is not None):
            # From the caller's first speech frame reaching the platform to the agent's audio being cut.
            self.record_metric(turn, "barge_in_delay", (silenced_at or time.monotonic()) - speech_arrived_at)
        log.info("turn %s interrupted: %s", turn.turn_id, reason)
        self._complete(turn, interrupted=True, cut=cut)

    def _complete(self, turn: Turn, *, interrupted: bool, cut: list[PlayedSegment] | None = None) -> None:
        if self._turns.pop(turn.turn_id, None) is None:
            return  # already completed
        agent_text = turn.played_text(cut)
        if turn.user_text and agent_text:
            self.history.append(ChatMessage("assistant", agent_text))
        self.bus.publish(
            TurnCompleted(
                conversation_id=self.conversation_id,
                turn_id=turn.turn_id,
                user_text=turn.user_text,
                agent_text=agent_text,
                interrupted=interrupted,
                metrics=dict(turn.metrics),
                llm_head_start_s=turn.llm_head_start_s,
            )
        )

    def record_metric(self, turn: Turn, name: MetricName, value: float) -> None:
        turn.metrics[name] = value
        self.bus.publish(
            MetricMeasured(conversation_id=self.conversation_id, turn_id=turn.turn_id, name=name, value=value)
        )
