"""When speech over the agent interrupts it, and when it is a false interruption (pure code, no audio)."""

from __future__ import annotations

from platform_core.pipeline.interruptions import InterruptionArbiter, InterruptionRules


def arbiter(**rules: float) -> InterruptionArbiter:
    return InterruptionArbiter(InterruptionRules(**rules))  # type: ignore[arg-type]


def test_speech_over_a_silent_agent_pauses_nothing_and_is_a_turn() -> None:
    a = arbiter()
    assert a.speech_began(1.0, agent_speaking=False) is None
    assert a.speech_ended(1.5, 0.4) is None  # None: an ordinary turn


def test_a_backchannel_pauses_then_resumes_and_is_no_turn() -> None:
    a = arbiter(speech_s=0.6)
    paused = a.speech_began(1.0, agent_speaking=True)
    assert paused is not None and paused.action == "pause" and a.paused
    assert a.speech_progress(1.3, 0.45) is None  # "mm-hmm": still undecided
    resumed = a.speech_ended(1.8, 0.45)
    assert resumed is not None and resumed.action == "resume" and resumed.reason == "speech ended"
    assert abs(resumed.paused_s - 0.8) < 1e-9 and resumed.speech_s == 0.45
    assert a.state == "idle"


def test_a_cough_too_short_for_a_turn_is_a_false_interruption() -> None:
    a = arbiter()
    a.speech_began(1.0, agent_speaking=True)
    resumed = a.speech_ended(1.4, 0.1)  # the listener discarded it
    assert resumed is not None and resumed.action == "resume"


def test_enough_speech_interrupts_and_the_utterance_is_the_next_turn() -> None:
    a = arbiter(speech_s=0.6)
    a.speech_began(1.0, agent_speaking=True)
    decided = a.speech_progress(1.6, 0.6)
    assert decided is not None and decided.action == "interrupt" and decided.speech_s == 0.6
    assert abs(decided.paused_s - 0.6) < 1e-9
    assert not a.paused
    assert a.speech_ended(2.5, 1.4) is None  # its end is an ordinary turn


def test_min_words_needs_both_the_duration_and_the_words() -> None:
    a = arbiter(speech_s=0.5, min_words=3)
    a.speech_began(1.0, agent_speaking=True)
    assert a.speech_progress(1.5, 0.5) is None
    assert a.needs_words
    assert a.words_heard(1.7, 2) is None  # "okay, right" is two words
    decided = a.words_heard(1.9, 3)
    assert decided is not None and decided.action == "interrupt" and decided.words == 3


def test_words_known_only_at_the_end_decide_there() -> None:
    a = arbiter(speech_s=0.5, min_words=2)
    a.speech_began(1.0, agent_speaking=True)
    a.speech_progress(1.5, 0.5)
    one_word = a.speech_ended(1.9, 0.7, words=1)
    assert one_word is not None and one_word.action == "resume"
    a.speech_began(3.0, agent_speaking=True)
    a.speech_progress(3.5, 0.5)
    two = a.speech_ended(3.9, 0.8, words=2)
    assert two is not None and two.action == "interrupt"


def test_many_words_without_the_duration_do_not_interrupt() -> None:
    a = arbiter(speech_s=0.6, min_words=1)
    a.speech_began(1.0, agent_speaking=True)
    assert a.words_heard(1.3, 1) is None
    resumed = a.speech_ended(1.6, 0.4)
    assert resumed is not None and resumed.action == "resume"


def test_undecided_speech_resumes_at_the_timeout_and_its_end_is_dropped() -> None:
    a = arbiter(speech_s=0.6, min_words=5, timeout_s=2.0)
    a.speech_began(1.0, agent_speaking=True)
    a.speech_progress(1.6, 0.6)
    assert a.tick(2.9) is None
    resumed = a.tick(3.0)
    assert resumed is not None and resumed.action == "resume" and resumed.reason == "timeout"
    assert a.speech_began(3.2, agent_speaking=True) is None  # the same utterance does not pause again
    assert a.words_heard(3.5, 9) is None  # nor interrupt after the resume
    dropped = a.speech_ended(4.0, 2.5, words=9)
    assert dropped is not None and dropped.action == "drop"
    # The next utterance is judged afresh.
    assert a.speech_began(5.0, agent_speaking=True) is not None


def test_one_pause_per_utterance() -> None:
    a = arbiter()
    assert a.speech_began(1.0, agent_speaking=True) is not None
    assert a.speech_began(1.1, agent_speaking=True) is None
    assert a.tick(1.5) is None  # not yet the timeout


def test_the_decisions_read_in_the_apps_event_log() -> None:
    from app.viewmodels.event_log import EventLogModel
    from platform_core.events import AgentInterrupted, AgentPaused, AgentResumed

    log = EventLogModel()
    for event in (
        AgentPaused(conversation_id="c", turn_id=1),
        AgentResumed(conversation_id="c", turn_id=1, paused_s=0.7, speech_s=0.45, reason="speech ended"),
        AgentInterrupted(conversation_id="c", turn_id=2, speech_s=0.6, words=0, paused_s=0.55),
    ):
        log.add(event)
    assert [(e.kind, e.text) for e in log.since(0)] == [
        ("AgentPaused", "turn_id=1"),
        ("AgentResumed", "turn_id=1 paused_s=0.7 speech_s=0.45 reason=speech ended"),
        ("AgentInterrupted", "turn_id=2 speech_s=0.6 words=0 paused_s=0.55"),
    ]


def test_the_call_report_lists_the_decisions() -> None:
    from platform_core.calls.report import _floor
    from platform_core.calls.tracker import CallTracker
    from platform_core.events import AgentPaused, AgentResumed, TurnStarted

    tracker = CallTracker()
    tracker.on_event(TurnStarted(conversation_id="c", turn_id=1, speech_ended_at=1.0, t=1.0), 1.0)
    tracker.on_event(AgentPaused(conversation_id="c", turn_id=1, t=12.5), 12.5)
    tracker.on_event(
        AgentResumed(conversation_id="c", turn_id=1, paused_s=0.7, speech_s=0.45, reason="speech ended", t=13.2), 13.2
    )
    assert tracker.last_activity == 13.2  # a decision is activity: the call is not over yet
    assert _floor(tracker, started_at=10.0) == [
        {"kind": "AgentPaused", "turn_id": 1, "at_s": 2.5},
        {
            "kind": "AgentResumed",
            "turn_id": 1,
            "paused_s": 0.7,
            "speech_s": 0.45,
            "reason": "speech ended",
            "at_s": 3.2,
        },
    ]
