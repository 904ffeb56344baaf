"""Answers one turn: STT -> tool calls -> LLM streamed clause by clause -> TTS -> playback."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import numpy as np

from platform_core.audio import WEBRTC_RATE, Int16Array, MonoResampler
from platform_core.config import PlatformConfig
from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm import LLMError
from platform_core.engines.llm.queue import LLMBusy
from platform_core.engines.runner import Engines
from platform_core.events import AgentTextDelta, ErrorOccurred, Event, LLMQueued, TranscriptFinal
from platform_core.pipeline.draft import DraftReply
from platform_core.pipeline.early_start import EarlyStart
from platform_core.pipeline.playback import Playback
from platform_core.pipeline.prompt_cache import warm_prompts, warm_reply_prefix
from platform_core.pipeline.sentences import ClauseSplitter
from platform_core.pipeline.tool_choice import choose_tool
from platform_core.pipeline.tools import ToolOutcome, ToolRouter, ToolSpec
from platform_core.pipeline.turn import MetricRecorder, Turn

HISTORY_MESSAGES = 12  # the prompt keeps the last few exchanges: small models, short prompts
FIRST_TOOLS_WAIT_S = 3.0  # an agent's dispatcher may still be starting when the first turn comes
FILLER_TEXT = "One moment, please."
# Said instead of an answer the language model could not give (the ErrorOccurred says why).
APOLOGY_TEXT = "Sorry, something went wrong on my side and I lost my train of thought. Could you say that again?"
BUSY_TEXT = "Sorry, I'm busy with other callers right now. Please try again in a moment."
# Said when the turn's tool failed (the tool-call event says why): never an answer made up without its data.
TOOL_FAILED_TEXT = {
    "error": "Sorry, I couldn't get that information right now: something went wrong while looking it up.",
    "timeout": "Sorry, I couldn't get that information right now: looking it up took too long.",
}

log = logging.getLogger(__name__)
_CANNED: dict[str, tuple[weakref.ref[Any], Int16Array]] = {}  # text -> (the voice that spoke it, its audio)


class Responder:
    """Answers the turns of one conversation. It shares the conversation's `history` (appending the
    caller's words and tool results), queues its audio on `playback`, and reports through
    `record_metric` and `publish`."""

    def __init__(
        self,
        *,
        conversation_id: str,
        agent_id: str | None,
        engines: Engines,
        router: ToolRouter,
        config: PlatformConfig,
        history: list[ChatMessage],
        playback: Playback,
        record_metric: MetricRecorder,
        publish: Callable[[Event], None],
    ) -> None:
        self.conversation_id = conversation_id
        self.agent_id = agent_id
        self.engines = engines
        self.router = router
        self.config = config
        self.history = history
        self.playback = playback
        self.record_metric = record_metric
        self.publish = publish
        self._waited_for_tools = False
        self._early: EarlyStart | None = None  # the next turn's LLM work, started at the caller's pause

    async def respond(self, turn: Turn) -> None:
        if turn.audio is not None:
            pending = turn.transcript or self.engines.transcribe(turn.audio)
            turn.user_text = (await pending).strip()
            self.record_metric(turn, "transcription_delay", time.monotonic() - turn.speech_ended_at)
        self.publish(TranscriptFinal(conversation_id=self.conversation_id, turn_id=turn.turn_id, text=turn.user_text))
        if not turn.user_text:
            turn.finish_synthesis()
            return
        self.history.append(ChatMessage("user", turn.user_text))
        tools = await self._tools()
        early = self._adopt_early(turn, tools)
        draft = self._start_draft() if tools and early is None else None
        prefix = self._warm_reply_prefix() if early is None and tools and draft is None else None
        try:
            # A tool call's arguments decode faster alone, and the reply then needs the tool's result.
            on_call = prefix.cancel if prefix is not None else early.stop_reply if early is not None else None
            await self._use_tools(turn, tools, on_call=on_call, early=early)
            if prefix is not None:
                await asyncio.wait({prefix})  # nearly done: the reply starts from what it processed
            failed = turn.tool_calls[-1] if turn.tool_calls and turn.tool_calls[-1].status != "done" else None
            if failed is not None:
                await self._admit_tool_failure(turn, failed)
            elif turn.tool_calls:
                await self._stream_reply(turn)
            else:  # the reply started at the pause, or the one drafted beside the choice
                started = early.reply() if early is not None else None
                await self._stream_reply(turn, started or draft)
        except (LLMError, EngineUnavailable) as exc:
            await self._answer_failure(turn, exc)
        finally:
            if prefix is not None:
                prefix.cancel()
            if early is not None:
                early.cancel()
            if draft is not None:
                await draft.close()

    def start_early(self, text: str) -> None:
        """The caller paused after saying `text`: start the next turn's LLM work now (pipeline/early_start.py)."""
        self.drop_early()
        text = text.strip()
        if text and self._may_start_early():
            tools = self.router.tools_for(self.conversation_id)
            heard = self._recent_history_for(text)
            self._early = EarlyStart(
                self.engines,
                text,
                len(self.history),
                heard,
                self._prompt_for(text),
                tools,
                self.config.voice.max_reply_tokens,
            )

    def _may_start_early(self) -> bool:
        """Only on the embedded LLM (a remote server's requests are not ours to spend), without reply drafts,
        and while no caller waits for the LLM."""
        engines = self.config.engines
        return engines.llm == "embedded" and not engines.llm_draft_reply and not self.engines.llm_queue.waiting

    def drop_early(self) -> None:
        """Stop the work started for words the caller may not have finished."""
        if self._early is not None:
            self._early.cancel()
            self._early = None

    def _adopt_early(self, turn: Turn, tools: list[ToolSpec]) -> EarlyStart | None:
        """The work started at the pause, if it was for the turn's words, this history and these tools."""
        early, self._early = self._early, None
        if early is not None and early.matches(turn.user_text, len(self.history) - 1, tools):
            turn.llm_head_start_s = round(early.age_s(), 4)
            return early
        if early is not None:
            log.debug("LLM work started at the pause dropped: it was for other words (%r)", early.text)
            early.cancel()
        return None

    def _start_draft(self) -> DraftReply | None:
        """The reply, drafted beside the tool choice (pipeline/draft.py) when the LLM has a slot to spare."""
        queue = self.engines.llm_queue
        if not self.config.engines.llm_draft_reply or self.config.engines.llm != "embedded" or queue.waiting:
            return None  # a remote server's requests may cost money; a busy LLM serves callers first
        return DraftReply(self.engines.llm, queue, self._prompt(), self.config.voice.max_reply_tokens)

    def _warm_reply_prefix(self) -> asyncio.Task[None] | None:
        """The reply's prompt, processed beside the tool choice (prompt_cache.warm_reply_prefix) on a spare slot."""
        queue = self.engines.llm_queue
        if self.config.engines.llm != "embedded" or not queue.spare or queue.waiting:
            return None
        return asyncio.ensure_future(warm_reply_prefix(self.engines, self._prompt()))

    async def _admit_tool_failure(self, turn: Turn, outcome: ToolOutcome) -> None:
        """A tool that failed gets a fixed honest answer, not a model's: a small model told that the tool
        failed still invents the data now and then (measured: 1 in a few calls on the 0.5B default)."""
        text = TOOL_FAILED_TEXT.get(outcome.status, TOOL_FAILED_TEXT["error"])
        self.publish(AgentTextDelta(conversation_id=self.conversation_id, turn_id=turn.turn_id, text=text))
        await self.speak_text(text, turn=turn)

    async def _answer_failure(self, turn: Turn, exc: LLMError | EngineUnavailable) -> None:
        """The language model could not answer: say so aloud and on the bus, with this turn's id."""
        log.warning("turn %s not answered: %s", turn.turn_id, exc.message)
        busy = isinstance(exc, LLMBusy)
        self.publish(
            ErrorOccurred(
                where="llm",
                message=f"turn {turn.turn_id} was not answered: {exc.message}",
                hint=exc.hint or "The conversation goes on; try the turn again.",
                conversation_id=self.conversation_id,
                turn_id=turn.turn_id,
            )
        )
        text = BUSY_TEXT if busy else APOLOGY_TEXT
        self.publish(AgentTextDelta(conversation_id=self.conversation_id, turn_id=turn.turn_id, text=text))
        await self._speak_canned(text, turn)

    async def _speak_canned(self, text: str, turn: Turn) -> None:
        """A fixed sentence, synthesized once per voice: under load it costs no TTS (which pauses the LLM)."""
        tts = self.engines.tts
        cached = _CANNED.get(text)
        if cached is None or cached[0]() is not tts:
            audio = _trim_leading_silence(await self._synthesized(text, turn=None, filler=False))
            cached = _CANNED[text] = (weakref.ref(tts), audio)
        self.playback.play(turn, text, cached[1])
        turn.finish_synthesis()

    def _note_if_queued(self, turn: Turn) -> None:
        """Tell the caller's feed (and the app) when this turn's next LLM request has to wait."""
        queue = self.engines.llm_queue
        if queue.callers_would_wait:
            self.publish(
                LLMQueued(
                    conversation_id=self.conversation_id,
                    turn_id=turn.turn_id,
                    ahead=queue.running + queue.waiting,
                    max_wait_s=queue.max_wait_s,
                )
            )

    # --- tools ------------------------------------------------------------------------------------

    async def _tools(self) -> list[ToolSpec]:
        tools = self.router.tools_for(self.conversation_id)
        if not tools and self.agent_id and not self._waited_for_tools:
            self._waited_for_tools = True
            tools = await self.router.wait_for_tools(self.conversation_id, FIRST_TOOLS_WAIT_S)
        return tools

    async def _use_tools(
        self,
        turn: Turn,
        tools: list[ToolSpec],
        on_call: Callable[[], object] | None = None,
        early: EarlyStart | None = None,
    ) -> None:
        if not tools:
            return
        called: set[str] = set()
        for _ in range(self.config.voice.max_tool_steps):
            started = time.monotonic()
            self._note_if_queued(turn)
            # The same tools every step, so the prompt's cached prefix serves the whole chain.
            try:
                adopted, choice = await early.tool_choice() if early is not None else (False, None)
                early = None  # the first step's only
                if not adopted:
                    choice = await choose_tool(self.engines.llm, self._recent_history(), tools, on_call=on_call)
            except LLMBusy:
                raise  # the reply would wait in the same queue: the turn gets the busy answer
            except LLMError as exc:  # e.g. a tool schema the server's grammar refused: answer without tools
                log.warning("tool choice failed, answering without tools: %s", exc)
                return
            spent = (turn.metrics.get("tool_choice") or 0.0) + time.monotonic() - started
            self.record_metric(turn, "tool_choice", spent)
            if choice is None:
                return
            key = json.dumps([choice.name, choice.arguments], sort_keys=True, default=str)
            if key in called:
                return  # asked again for a result it already has: time to answer
            called.add(key)
            outcome = await self._call_with_filler(turn, choice.name, choice.arguments)
            turn.tool_calls.append(outcome)
            self.history.append(ChatMessage("tool", describe_outcome(outcome)))
            if outcome.status != "done":
                return  # no chain goes on from a failure: the caller is told

    async def warm_up(self, tools: list[ToolSpec], *, reply: bool = True) -> None:
        """Process the fixed prompt prefixes now (the tool-choice one for `tools`, the reply's one with
        `reply`), so the first turn finds them in the KV cache."""
        system_prompt = self.config.profile_for(self.agent_id).system_prompt if reply else ""
        await warm_prompts(self.engines, self.config, tools, system_prompt)

    async def _call_with_filler(self, turn: Turn, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        call = asyncio.ensure_future(
            self.router.call_tool(self.conversation_id, name, dict(arguments), turn_id=turn.turn_id)
        )
        try:
            done, _ = await asyncio.wait({call}, timeout=self.config.voice.tool_filler_after_s)
            if not done:
                self.publish(
                    AgentTextDelta(
                        conversation_id=self.conversation_id, turn_id=turn.turn_id, text=FILLER_TEXT, filler=True
                    )
                )
                await self.speak_text(FILLER_TEXT, turn=turn, finish=False, filler=True)
            return await call
        finally:
            call.cancel()  # a cancelled turn (barge-in, hang-up) takes its call along, even one not yet sent

    # --- the spoken answer ------------------------------------------------------------------------

    def _recent_history(self) -> list[ChatMessage]:
        return self.history[-HISTORY_MESSAGES:]

    def _prompt(self) -> list[ChatMessage]:
        profile = self.config.profile_for(self.agent_id)
        return [ChatMessage("system", profile.system_prompt), *self._recent_history()]

    def _recent_history_for(self, text: str) -> list[ChatMessage]:
        """What `_recent_history` will be once the caller's words `text` are in the history."""
        return [*self.history, ChatMessage("user", text)][-HISTORY_MESSAGES:]

    def _prompt_for(self, text: str) -> list[ChatMessage]:
        """What `_prompt` will be once the caller's words `text` are in the history."""
        profile = self.config.profile_for(self.agent_id)
        return [ChatMessage("system", profile.system_prompt), *self._recent_history_for(text)]

    async def _stream_reply(self, turn: Turn, draft: DraftReply | None = None) -> None:
        """Stream the answer to TTS clause by clause: the draft's when it can be adopted, else a new one.
        Adopted, the LLM's times count from now (the end of tool choice): the stages still add up."""
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.ensure_future(self._speak_clauses(turn, clauses))
        splitter = ClauseSplitter()
        started = time.monotonic()
        first_token = True
        stream: AsyncIterator[str]
        if draft is not None and await draft.adopt():
            stream = draft.deltas()
        else:
            self._note_if_queued(turn)
            stream = self.engines.llm.stream_chat(self._prompt(), max_tokens=self.config.voice.max_reply_tokens)
        try:
            async for delta in stream:
                if first_token and delta:
                    first_token = False
                    self.record_metric(turn, "llm_ttft", time.monotonic() - started)
                for clause in splitter.feed(delta):
                    self._hand_to_tts(turn, clause, clauses, started)
            for clause in splitter.flush():
                self._hand_to_tts(turn, clause, clauses, started)
            clauses.put_nowait(None)
            await speaker
        finally:
            speaker.cancel()
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()  # frees the LLM's slot now, not when the generator is collected

    def _hand_to_tts(self, turn: Turn, clause: str, clauses: asyncio.Queue[str | None], started: float) -> None:
        if "llm_ttfs" not in turn.metrics:
            self.record_metric(turn, "llm_ttfs", time.monotonic() - started)
        self.publish(AgentTextDelta(conversation_id=self.conversation_id, turn_id=turn.turn_id, text=clause))
        clauses.put_nowait(clause)

    async def _speak_clauses(self, turn: Turn, clauses: asyncio.Queue[str | None]) -> None:
        while (clause := await clauses.get()) is not None:
            await self.speak_text(clause, turn=turn, finish=False)
        turn.finish_synthesis()

    async def speak_text(self, text: str, *, turn: Turn | None, finish: bool = True, filler: bool = False) -> None:
        """Synthesize `text` and queue it for playback as one segment (a `filler` is not the answer)."""
        pcm = await self._synthesized(text, turn=turn, filler=filler)
        self.playback.play(turn, text, pcm, filler=filler)
        if turn is not None and finish:
            turn.finish_synthesis()

    async def _synthesized(self, text: str, *, turn: Turn | None, filler: bool) -> Int16Array:
        """`text`'s audio at the WebRTC rate (a turn's first audio starts at its first audible sample)."""
        resampler = MonoResampler(WEBRTC_RATE)
        rate = self.engines.tts.sample_rate
        parts: list[Int16Array] = []
        asked = time.monotonic()
        async for chunk in self.engines.synthesize(text):
            if turn is not None and not filler and "tts_ttfb" not in turn.metrics:  # the answer's, not a filler's
                self.record_metric(turn, "tts_ttfb", time.monotonic() - asked)
            parts.append(resampler.resample(chunk, rate))
        parts.append(resampler.flush())
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        if turn is not None and turn.first_audio_at is None and turn.pending_segments == 0:
            pcm = _trim_leading_silence(pcm)
        return pcm


def _trim_leading_silence(pcm: Int16Array, threshold: int = 300, keep_s: float = 0.01) -> Int16Array:
    """The first clause starts at its first audible sample: e2e latency counts audio, not padding."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) - int(keep_s * WEBRTC_RATE))
    return pcm[start:]


_FAILURE_WORDS = {"error": "failed", "timeout": "did not answer in time", "cancelled": "was cancelled"}


def describe_outcome(outcome: ToolOutcome) -> str:
    """The tool's result for the prompt; a failure in plain words, so the model says it and invents nothing."""
    if outcome.status == "done":
        return json.dumps({"tool": outcome.name, "result": outcome.result}, default=str)
    why = f" ({outcome.error})" if outcome.error else ""
    return (
        f"The tool {outcome.name} {_FAILURE_WORDS.get(outcome.status, 'failed')}{why}. No data came back. "
        "You do not know the answer. Tell the caller you could not get that information right now. "
        "Do not guess and do not make up any details."
    )
