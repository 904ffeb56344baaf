"""Answers one turn: STT -> tool calls -> LLM streamed clause by clause -> TTS -> playback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from platform_core.audio import WEBRTC_RATE, Int16Array, MonoResampler
from platform_core.config import PlatformConfig
from platform_core.engines.base import ChatMessage
from platform_core.engines.runner import Engines
from platform_core.events import AgentTextDelta, Event, TranscriptFinal
from platform_core.pipeline.playback import Playback
from platform_core.pipeline.sentences import ClauseSplitter
from platform_core.pipeline.tool_choice import choose_tool, tool_choice_messages, tool_choice_schema
from platform_core.pipeline.tools import ToolOutcome, ToolRouter, ToolSpec
from platform_core.pipeline.turn import MetricRecorder, Turn

HISTORY_MESSAGES = 12  # the prompt keeps the last few exchanges: small models, short prompts
FIRST_TOOLS_WAIT_S = 3.0  # an agent's dispatcher may still be starting when the first turn comes
FILLER_TEXT = "One moment, please."


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
        await self._use_tools(turn)
        await self._stream_reply(turn)

    # --- tools ------------------------------------------------------------------------------------

    async def _tools(self) -> list[ToolSpec]:
        tools = self.router.tools_for(self.conversation_id)
        if not tools and self.agent_id and not self._waited_for_tools:
            self._waited_for_tools = True
            tools = await self.router.wait_for_tools(self.conversation_id, FIRST_TOOLS_WAIT_S)
        return tools

    async def _use_tools(self, turn: Turn) -> None:
        tools = await self._tools()
        if not tools:
            return
        called: set[str] = set()
        for _ in range(self.config.voice.max_tool_steps):
            started = time.monotonic()
            # The same tools every step, so the prompt's cached prefix serves the whole chain.
            choice = await choose_tool(self.engines.llm, self._recent_history(), tools)
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
            self.history.append(ChatMessage("tool", _describe_outcome(outcome)))

    async def warm_up(self, tools: list[ToolSpec], *, reply: bool = True) -> None:
        """Process the fixed prompt prefixes now (the tool-choice one for `tools`, the reply's one with
        `reply`), so the first turn finds them in the KV cache."""
        if self.config.engines.llm != "embedded":
            return  # a remote server's cache is not ours to fill (and may cost money)
        probe = [ChatMessage("user", "Hello.")]
        requests: list[tuple[list[ChatMessage], dict[str, Any] | None]] = []
        if tools:
            requests.append((tool_choice_messages(probe, tools), tool_choice_schema(tools)))
        if reply:
            profile = self.config.profile_for(self.agent_id)
            requests.append(([ChatMessage("system", profile.system_prompt), *probe], None))
        for messages, schema in requests:
            async for _ in self.engines.llm.stream_chat(messages, json_schema=schema, max_tokens=1):
                pass

    async def _call_with_filler(self, turn: Turn, name: str, arguments: Mapping[str, Any]) -> ToolOutcome:
        call = asyncio.ensure_future(
            self.router.call_tool(self.conversation_id, name, dict(arguments), turn_id=turn.turn_id)
        )
        done, _ = await asyncio.wait({call}, timeout=self.config.voice.tool_filler_after_s)
        if not done:
            self.publish(
                AgentTextDelta(
                    conversation_id=self.conversation_id, turn_id=turn.turn_id, text=FILLER_TEXT, filler=True
                )
            )
            await self.speak_text(FILLER_TEXT, turn=turn, finish=False, filler=True)
        return await call

    # --- the spoken answer ------------------------------------------------------------------------

    def _recent_history(self) -> list[ChatMessage]:
        return self.history[-HISTORY_MESSAGES:]

    def _prompt(self) -> list[ChatMessage]:
        profile = self.config.profile_for(self.agent_id)
        return [ChatMessage("system", profile.system_prompt), *self._recent_history()]

    async def _stream_reply(self, turn: Turn) -> None:
        clauses: asyncio.Queue[str | None] = asyncio.Queue()
        speaker = asyncio.ensure_future(self._speak_clauses(turn, clauses))
        splitter = ClauseSplitter()
        started = time.monotonic()
        first_token = True
        try:
            async for delta in self.engines.llm.stream_chat(
                self._prompt(), max_tokens=self.config.voice.max_reply_tokens
            ):
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
        self.playback.play(turn, text, pcm, filler=filler)
        if turn is not None and finish:
            turn.finish_synthesis()


def _trim_leading_silence(pcm: Int16Array, threshold: int = 300, keep_s: float = 0.01) -> Int16Array:
    """The first clause starts at its first audible sample: e2e latency counts audio, not padding."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > threshold)
    if loud.size == 0:
        return pcm
    start = max(0, int(loud[0]) - int(keep_s * WEBRTC_RATE))
    return pcm[start:]


def _describe_outcome(outcome: ToolOutcome) -> str:
    if outcome.status == "done":
        return json.dumps({"tool": outcome.name, "result": outcome.result}, default=str)
    return json.dumps({"tool": outcome.name, "error": outcome.error or outcome.status})
