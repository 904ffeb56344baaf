"""Whether the caller's speech over the agent is an interruption. Pure code, like `turns.py`.

Speech over the agent pauses it at once (`speech_began`). It becomes an interruption once it has lasted
`speech_s` and, when `min_words` > 0, that many words were recognised. Speech that ends before that (a
backchannel, a cough, a click) is a false interruption: the agent resumes where it paused. If the speech
neither qualifies nor ends within `timeout_s`, the agent resumes anyway and that utterance is dismissed
(its end starts no turn). One utterance at a time: the listener's utterances do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["pause", "resume", "interrupt", "drop"]
ResumeReason = Literal["speech ended", "timeout"]


@dataclass(frozen=True)
class InterruptionRules:
    speech_s: float = 0.6  # speech over the agent that interrupts it
    min_words: int = 0  # and at least this many recognised words (0: duration only)
    timeout_s: float = 2.0  # undecided this long after the pause: resume


@dataclass(frozen=True)
class Verdict:
    """One decision: `pause` the agent, `resume` it (a false interruption), `interrupt` it, or `drop`
    the end of a dismissed utterance (no event: the agent has already resumed)."""

    action: Action
    t: float
    paused_s: float = 0.0  # how long the agent had been paused (resume, interrupt)
    speech_s: float = 0.0  # the caller's speech so far
    words: int = 0  # recognised words so far
    reason: str = ""


class InterruptionArbiter:
    """Decides, per utterance of the caller, pause -> interrupt | resume."""

    def __init__(self, rules: InterruptionRules) -> None:
        self.rules = rules
        self.state: Literal["idle", "paused", "dismissed"] = "idle"
        self.paused_at = 0.0
        self.speech_s = 0.0
        self.words = 0

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    def reset(self) -> None:
        self.state = "idle"
        self.speech_s = 0.0
        self.words = 0

    def speech_began(self, t: float, *, agent_speaking: bool) -> Verdict | None:
        """The caller started speaking; pause the agent if it is speaking."""
        if self.state != "idle" or not agent_speaking:
            return None
        self.state, self.paused_at, self.speech_s, self.words = "paused", t, 0.0, 0
        return Verdict("pause", t)

    def speech_progress(self, t: float, speech_s: float) -> Verdict | None:
        """The utterance has `speech_s` of speech so far."""
        self.speech_s = max(self.speech_s, speech_s)
        return self._maybe_interrupt(t)

    def words_heard(self, t: float, words: int) -> Verdict | None:
        """A transcript of the utterance so far has `words` words."""
        self.words = max(self.words, words)
        return self._maybe_interrupt(t)

    @property
    def needs_words(self) -> bool:
        """Paused, long enough, and only the word count is missing: the utterance's transcript decides."""
        return self.paused and self.speech_s >= self.rules.speech_s and self.words < self.rules.min_words

    def speech_ended(self, t: float, speech_s: float, words: int | None = None) -> Verdict | None:
        """The utterance is over (a turn, or discarded as too short); `words`: its transcript's, if known.
        None: the utterance was not over the agent, it is a turn as usual."""
        state = self.state
        if state == "idle":
            return None
        self.speech_s = max(self.speech_s, speech_s)
        if words is not None:
            self.words = max(self.words, words)
        if state == "dismissed":
            self.reset()
            return Verdict("drop", t, speech_s=self.speech_s)
        verdict = self._maybe_interrupt(t)
        if verdict is not None:
            return verdict
        return self._resume(t, "speech ended")

    def tick(self, t: float) -> Verdict | None:
        """Time passes: resume once the pause has lasted `timeout_s` undecided."""
        if self.paused and t - self.paused_at >= self.rules.timeout_s - 1e-9:
            verdict = self._resume(t, "timeout")
            self.state = "dismissed"
            return verdict
        return None

    def _qualifies(self) -> bool:
        return self.speech_s >= self.rules.speech_s - 1e-9 and self.words >= self.rules.min_words

    def _maybe_interrupt(self, t: float) -> Verdict | None:
        if not self.paused or not self._qualifies():
            return None
        reason = f"{self.speech_s:.2f} s of speech" + (f", {self.words} words" if self.rules.min_words else "")
        verdict = Verdict(
            "interrupt", t, paused_s=t - self.paused_at, speech_s=self.speech_s, words=self.words, reason=reason
        )
        self.state = "idle"  # the utterance goes on as the caller's next turn
        return verdict

    def _resume(self, t: float, reason: ResumeReason) -> Verdict:
        verdict = Verdict(
            "resume", t, paused_s=t - self.paused_at, speech_s=self.speech_s, words=self.words, reason=reason
        )
        self.reset()
        return verdict
