"""End of turn by meaning: the hold and commit rules of `TurnHold` (pure code, no audio or model)."""

from __future__ import annotations

from platform_core.pipeline.turn_hold import Commit, Held, Judgement, TurnHold

DONE = Judgement(0.93, 0.05)
UNFINISHED = Judgement(0.08, 0.05)


def test_a_complete_turn_commits_at_the_endpoint_itself() -> None:
    hold = TurnHold(threshold=0.5, max_wait_s=3.0)
    outcome = hold.at_endpoint(1.0, 2.0, 2.3, DONE)
    assert outcome == Commit("complete", 1.0, 2.0, 0.93, 0.0, 0.05)
    assert not hold.held


def test_without_a_judgement_every_endpoint_commits_on_silence() -> None:
    hold = TurnHold()
    outcome = hold.at_endpoint(1.0, 2.0, 2.3, None)
    assert isinstance(outcome, Commit) and outcome.reason == "silence" and outcome.probability is None


def test_an_unfinished_turn_is_held_and_resumed_speech_joins_it() -> None:
    hold = TurnHold(threshold=0.5, max_wait_s=3.0)
    held = hold.at_endpoint(1.0, 2.0, 2.3, UNFINISHED)
    assert held == Held(0.08, 3.0, 0.05, 2.0) and hold.held
    # The caller goes on 0.8 s after pausing: the second half starts a new detector segment...
    assert hold.turn_start(2.8) == 1.0
    assert hold.expired(4.0, speaking=True) is None
    # ... and its endpoint, judged complete, commits the whole turn from the first half's start.
    outcome = hold.at_endpoint(2.8, 4.0, 4.3, DONE)
    assert isinstance(outcome, Commit)
    assert (outcome.reason, outcome.started_at, outcome.ended_at) == ("complete", 1.0, 4.0)
    assert abs(outcome.held_s - 2.0) < 1e-9  # from the first hold (2.3) to the commit (4.3)
    assert not hold.held and hold.turn_start(5.0) == 5.0


def test_a_held_turn_commits_after_the_longest_wait_in_silence() -> None:
    hold = TurnHold(threshold=0.5, max_wait_s=3.0)
    hold.at_endpoint(1.0, 2.0, 2.3, UNFINISHED)
    assert hold.expired(5.2, speaking=False) is None
    assert hold.expired(5.4, speaking=True) is None  # the caller is speaking again: no commit under them
    outcome = hold.expired(5.3, speaking=False)
    assert outcome == Commit("max_wait", 1.0, 2.0, 0.08, 3.0, 0.05)
    assert hold.expired(9.0, speaking=False) is None  # committed once


def test_each_new_hold_waits_from_its_own_pause() -> None:
    hold = TurnHold(threshold=0.5, max_wait_s=3.0)
    hold.at_endpoint(1.0, 2.0, 2.3, UNFINISHED)
    hold.at_endpoint(3.0, 4.0, 4.3, UNFINISHED)  # spoke again, paused again mid-sentence
    assert hold.expired(6.0, speaking=False) is None  # 3.7 s after the first hold, 1.7 s after this one
    outcome = hold.expired(7.3, speaking=False)
    assert isinstance(outcome, Commit) and (outcome.started_at, outcome.ended_at) == (1.0, 4.0)
    assert abs(outcome.held_s - 5.0) < 1e-9


def test_a_probability_at_the_threshold_counts_as_complete() -> None:
    hold = TurnHold(threshold=0.6)
    assert isinstance(hold.at_endpoint(0.0, 1.0, 1.3, Judgement(0.6, 0.0)), Commit)
    assert isinstance(hold.at_endpoint(0.0, 1.0, 1.3, Judgement(0.59, 0.0)), Held)


def test_the_length_limit_commits_even_an_unfinished_turn() -> None:
    hold = TurnHold(threshold=0.5, max_turn_s=10.0)
    hold.at_endpoint(0.0, 6.0, 6.3, UNFINISHED)
    outcome = hold.at_endpoint(7.0, 10.0, 10.3, UNFINISHED)
    assert isinstance(outcome, Commit) and outcome.reason == "max_turn" and outcome.started_at == 0.0
    forced = hold.at_endpoint(11.0, 41.0, 41.0, None, forced=True)
    assert isinstance(forced, Commit) and forced.reason == "max_turn"


def test_cancel_forgets_the_held_turn() -> None:
    hold = TurnHold()
    hold.at_endpoint(1.0, 2.0, 2.3, UNFINISHED)
    hold.cancel()
    assert not hold.held and hold.expired(99.0, speaking=False) is None
