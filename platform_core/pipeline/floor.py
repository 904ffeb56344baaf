"""Who has the floor while the caller speaks over the agent: pause at once, then interrupt or resume.

The conversation tells `Floor` about the caller's utterance (began, grew, words heard, ended); the
decisions come from `InterruptionArbiter` (pure), and `Floor` carries them out: it pauses and resumes
the playback, runs the false-interruption timeout, publishes `AgentPaused` / `AgentResumed` /
`AgentInterrupted`, and hands an interruption back to the conversation (which cuts the answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from platform_core.events import AgentInterrupted, AgentPaused, AgentResumed, Event
from platform_core.pipeline.interruptions import InterruptionArbiter, InterruptionRules, Verdict
from platform_core.pipeline.playback import Playback

OnInterrupted = Callable[[int, float, float], None]
"""(turn id, when the caller's speech reached the platform, when the agent fell silent)."""


class Floor:
    def __init__(
        self,
        conversation_id: str,
        rules: InterruptionRules,
        *,
        playback: Playback,
        publish: Callable[[Event], None],
        on_interrupted: OnInterrupted,
    ) -> None:
        self.conversation_id = conversation_id
        self.arbiter = InterruptionArbiter(rules)
        self._playback = playback
        self._publish = publish
        self._on_interrupted = on_interrupted
        self._timer: asyncio.TimerHandle | None = None
        self._turn_id = 0  # the paused answer's turn
        self._speech_arrived_at = 0.0
        self._silenced_at = 0.0

    @property
    def paused(self) -> bool:
        return self.arbiter.paused

    @property
    def needs_words(self) -> bool:
        return self.arbiter.needs_words

    def speech_began(self, speech_arrived_at: float, turn_id: int) -> None:
        """The caller started speaking while the agent was saying turn `turn_id`'s answer."""
        now = time.monotonic()
        if self.arbiter.speech_began(now, agent_speaking=True) is None:
            return
        self._playback.pause()
        self._turn_id, self._speech_arrived_at, self._silenced_at = turn_id, speech_arrived_at, now
        self._publish(AgentPaused(conversation_id=self.conversation_id, turn_id=turn_id))
        self._timer = asyncio.get_running_loop().call_later(self.arbiter.rules.timeout_s, self._timed_out)

    def speech_progress(self, speech_s: float) -> None:
        self._apply(self.arbiter.speech_progress(time.monotonic(), speech_s))

    def words_heard(self, words: int) -> None:
        if self.arbiter.paused:
            self._apply(self.arbiter.words_heard(time.monotonic(), words))

    def speech_ended(self, speech_s: float, words: int | None = None) -> bool:
        """The utterance is over; True when it is a turn (it interrupted, or was not over the agent),
        False when it is dropped (a false interruption: the agent resumed)."""
        verdict = self.arbiter.speech_ended(time.monotonic(), speech_s, words)
        self._apply(verdict)
        return verdict is None or verdict.action == "interrupt"

    def release(self) -> None:
        """Give the floor back without a decision (a typed turn, hang-up): playback goes on."""
        self.arbiter.reset()
        self._stop_timer()
        self._playback.resume()

    def _timed_out(self) -> None:
        self._timer = None
        self._apply(self.arbiter.tick(time.monotonic()))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _apply(self, verdict: Verdict | None) -> None:
        if verdict is None or verdict.action in ("pause", "drop"):
            return
        self._stop_timer()
        cid, turn_id = self.conversation_id, self._turn_id
        if verdict.action == "resume":
            self._playback.resume()
            self._publish(
                AgentResumed(
                    conversation_id=cid,
                    turn_id=turn_id,
                    paused_s=verdict.paused_s,
                    speech_s=verdict.speech_s,
                    reason=verdict.reason,
                )
            )
            return
        self._publish(
            AgentInterrupted(
                conversation_id=cid,
                turn_id=turn_id,
                speech_s=verdict.speech_s,
                words=verdict.words,
                paused_s=verdict.paused_s,
            )
        )
        self._on_interrupted(turn_id, self._speech_arrived_at, self._silenced_at)
        self._playback.resume()  # the answer is cut: what comes next is the caller's next answer
