"""Endpointing decisions from VAD probabilities (pure code, no audio)."""

from platform_core.pipeline.turns import TurnDetector

FRAME = 0.032


def run(detector: TurnDetector, pattern: list[tuple[float, float]]) -> list[tuple[str, float, float]]:
    """pattern: (probability, seconds) runs; returns (signal kind, t, speech_ended_at)."""
    t = 0.0
    out = []
    for probability, seconds in pattern:
        for _ in range(round(seconds / FRAME)):
            t += FRAME
            out += [(s.kind, round(s.t, 3), round(s.speech_ended_at, 3)) for s in detector.feed(probability, t, FRAME)]
    return out


def test_utterance_ends_after_the_silence_window() -> None:
    detector = TurnDetector(endpoint_silence_s=0.32, min_speech_s=0.15, barge_in_speech_s=0.1)
    signals = run(detector, [(0.0, 0.32), (0.9, 0.96), (0.0, 0.64)])
    kinds = [s[0] for s in signals]
    # 0.96 s of speech is enough to interrupt the agent (default 0.6 s): that signal comes once, in the speech.
    assert kinds == ["barge_in", "speech_started", "interrupt", "pause", "turn_ended"]
    ended = signals[-1]
    assert abs(ended[2] - 1.28) < 1e-6  # the caller stopped at the end of the last speech frame
    assert abs(ended[1] - ended[2] - 0.32) < FRAME  # committed one silence window later


def test_short_pause_does_not_end_the_turn() -> None:
    detector = TurnDetector(endpoint_silence_s=0.35)
    signals = run(detector, [(0.9, 0.5), (0.0, 0.2), (0.9, 0.5), (0.0, 0.5)])
    assert [s[0] for s in signals].count("turn_ended") == 1


def test_a_click_is_discarded_not_a_turn() -> None:
    detector = TurnDetector(min_speech_s=0.15, barge_in_speech_s=0.1, endpoint_silence_s=0.3)
    signals = run(detector, [(0.9, 0.064), (0.0, 0.5)])
    assert [s[0] for s in signals] == ["speech_discarded"]


def test_barge_in_fires_well_within_200_ms_of_speech_onset() -> None:
    detector = TurnDetector(barge_in_speech_s=0.1)
    signals = run(detector, [(0.0, 0.3), (0.9, 0.3)])
    barge = next(s for s in signals if s[0] == "barge_in")
    onset = round(0.3 / FRAME) * FRAME
    assert barge[1] - onset <= 0.2


def test_hysteresis_keeps_weak_speech_inside_an_utterance() -> None:
    detector = TurnDetector(threshold=0.5, endpoint_silence_s=0.3)
    signals = run(detector, [(0.9, 0.3), (0.4, 0.6), (0.0, 0.4)])
    ended = [s for s in signals if s[0] == "turn_ended"]
    assert len(ended) == 1 and ended[0][2] > 0.85


def test_monologue_is_cut_at_max_turn_length() -> None:
    detector = TurnDetector(max_turn_s=2.0, endpoint_silence_s=0.3)
    signals = run(detector, [(0.9, 5.0), (0.0, 0.5)])
    assert [s[0] for s in signals].count("turn_ended") == 3


def test_pause_signals_once_per_pause_and_again_after_more_speech() -> None:
    detector = TurnDetector(endpoint_silence_s=0.5, pause_s=0.15)
    signals = run(detector, [(0.9, 0.5), (0.0, 0.3), (0.9, 0.5), (0.0, 0.7)])
    kinds = [s[0] for s in signals]
    assert kinds.count("pause") == 2 and kinds.count("turn_ended") == 1
    pauses = [s for s in signals if s[0] == "pause"]
    # The second pause covers the longer audio: it ends where the turn ends.
    assert pauses[1][2] == signals[-1][2]


def test_interrupt_comes_once_after_enough_speech_not_for_a_backchannel() -> None:
    detector = TurnDetector(barge_in_speech_s=0.064, interrupt_speech_s=0.6, endpoint_silence_s=0.3)
    short = run(detector, [(0.9, 0.45), (0.0, 0.5)])  # "mm-hmm": pauses the agent, does not interrupt it
    assert [s[0] for s in short] == ["barge_in", "speech_started", "pause", "turn_ended"]
    # A sentence with a short gap: the speech before and after the gap adds up, and interrupts once.
    long = run(detector, [(0.9, 0.4), (0.0, 0.15), (0.9, 0.4), (0.0, 0.5)])
    interrupts = [s for s in long if s[0] == "interrupt"]
    assert len(interrupts) == 1
    assert abs(interrupts[0][1] - (0.4 + 0.15 + 0.2)) < FRAME  # 0.6 s of speech: the gap is not counted
