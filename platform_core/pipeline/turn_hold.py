"""End of turn by meaning: what to do at each silence endpoint, given the turn model's judgement. Pure code.

`TurnDetector` finds the silence endpoints; at each one the listener asks the turn model how likely
the caller is done, and `TurnHold` decides. Complete (probability >= threshold): commit at once, as
fast as silence alone would. Unfinished (a pause mid-sentence): hold the turn open; speech that
resumes joins it (its start stays the held turn's), and the next endpoint is judged again. A held
turn commits when `max_wait_s` pass in silence, or when it reaches `max_turn_s`. Without a
judgement (no model, silence-only endpointing) every endpoint commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from platform_core.events import TurnCommitReason


@dataclass(frozen=True)
class Judgement:
    probability: float  # that the turn is complete
    model_s: float  # how long the model took


@dataclass(frozen=True)
class Held:
    probability: float
    wait_s: float  # the longest it stays held
    model_s: float
    speech_ended_at: float


@dataclass(frozen=True)
class Commit:
    reason: TurnCommitReason
    started_at: float  # the turn's first speech (a held turn's, when speech resumed after a hold)
    ended_at: float  # the caller's last speech
    probability: float | None
    held_s: float  # from the first hold to the commit
    model_s: float | None


class TurnHold:
    def __init__(self, *, threshold: float = 0.5, max_wait_s: float = 3.0, max_turn_s: float = 30.0) -> None:
        self.threshold = threshold
        self.max_wait_s = max_wait_s
        self.max_turn_s = max_turn_s
        self._reset()

    def _reset(self) -> None:
        self._start: float | None = None  # the held turn's first speech; None: nothing held
        self._first_held_at = 0.0
        self._held_at = 0.0  # the last hold (the wait counts from it)
        self._ended_at = 0.0
        self._last: Judgement | None = None

    @property
    def held(self) -> bool:
        return self._start is not None

    def turn_start(self, segment_start: float) -> float:
        """Where the turn that `segment_start`'s speech belongs to started."""
        return segment_start if self._start is None else min(self._start, segment_start)

    def at_endpoint(
        self, started_at: float, ended_at: float, t: float, judgement: Judgement | None, *, forced: bool = False
    ) -> Held | Commit:
        """The silence endpoint at `t` of speech from `started_at` to `ended_at`. `forced`: the
        detector cut the turn at its length limit (the caller is still speaking)."""
        start = self.turn_start(started_at)
        self._last = judgement
        if forced:
            return self._commit("max_turn", start, ended_at, t)
        if judgement is None:
            return self._commit("silence", start, ended_at, t)
        if judgement.probability >= self.threshold:
            return self._commit("complete", start, ended_at, t)
        if t - start >= self.max_turn_s:
            return self._commit("max_turn", start, ended_at, t)
        if self._start is None:
            self._first_held_at = t
        self._start, self._held_at, self._ended_at = start, t, ended_at
        return Held(judgement.probability, self.max_wait_s, judgement.model_s, ended_at)

    def expired(self, t: float, *, speaking: bool) -> Commit | None:
        """The held turn's commit once it has waited `max_wait_s` in silence, else None."""
        if self._start is None or speaking or t - self._held_at < self.max_wait_s - 1e-9:
            return None
        return self._commit("max_wait", self._start, self._ended_at, t)

    def cancel(self) -> None:
        """Forget a held turn (the call is over)."""
        self._reset()

    def _commit(self, reason: TurnCommitReason, start: float, ended_at: float, t: float) -> Commit:
        held_s = t - self._first_held_at if self._start is not None else 0.0
        last = self._last
        commit = Commit(
            reason,
            start,
            ended_at,
            last.probability if last else None,
            round(held_s, 4),
            last.model_s if last else None,
        )
        self._reset()
        return commit
