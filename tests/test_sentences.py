"""ClauseSplitter: clause boundaries in streamed text (pure code)."""

from __future__ import annotations

import pytest

from platform_core.pipeline.sentences import ClauseSplitter, split_clauses


def stream(text: str, step: int = 1, **options: int) -> list[tuple[int, str]]:
    """Feed `text` in `step`-char deltas; (chars fed when the clause came out, clause)."""
    splitter = ClauseSplitter(**options)
    out: list[tuple[int, str]] = []
    for pos in range(0, len(text), step):
        out += [(pos + step, c) for c in splitter.feed(text[pos : pos + step])]
    out += [(len(text), c) for c in splitter.flush()]
    return out


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Great! Let me check; one moment.", ["Great!", "Let me check;", "one moment."]),
        ("It is 3.5 degrees. Cold.", ["It is 3.5 degrees.", "Cold."]),
        ("The meeting is at 10:30. See you.", ["The meeting is at 10:30.", "See you."]),
        ("Mr. Smith called Dr. Jones. Done.", ["Mr. Smith called Dr. Jones.", "Done."]),
        ("Bring fruits, e.g. apples. Thanks.", ["Bring fruits,", "e.g. apples.", "Thanks."]),
        ("Use i.e. this one. Ok.", ["Use i.e. this one.", "Ok."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ("It opens at 5 p.m. today. Come.", ["It opens at 5 p.m. today.", "Come."]),
        ("It opens at 5 p.m. Then it closes.", ["It opens at 5 p.m.", "Then it closes."]),
        ("Room No. 5 is free.", ["Room No. 5 is free."]),
        ('He said "Stop!" Then he left.', ['He said "Stop!"', "Then he left."]),
        ("(Really.) Yes.", ["(Really.)", "Yes."]),
        ("Visit example.com today. Bye.", ["Visit example.com today.", "Bye."]),
        ("It costs $1,500. Cheap.", ["It costs $1,500.", "Cheap."]),
        ("Wait... what? Ok!", ["Wait... what?", "Ok!"]),
        ("Wait... Really? Ok!", ["Wait...", "Really?", "Ok!"]),
        ("Line one\nLine two", ["Line one", "Line two"]),
        ("No punctuation at the end", ["No punctuation at the end"]),
        ("  spaced   out  text.  ", ["spaced out text."]),
        ("", []),
        ("?!", []),
    ],
)
def test_split_clauses(text: str, clauses: list[str]) -> None:
    assert split_clauses(text) == clauses
    # Any way the text is cut into deltas gives the same clauses.
    for step in (1, 2, 3, 7):
        assert [c for _, c in stream(text, step)] == clauses


def test_first_clause_may_end_at_a_comma_when_long_enough() -> None:
    text = "The weather in San Francisco, right now, is sunny, with a light breeze."
    assert split_clauses(text) == [
        "The weather in San Francisco,",
        "right now, is sunny, with a light breeze.",
    ]


def test_short_first_clause_does_not_split_at_comma() -> None:
    assert split_clauses("Sure, I can do that.") == ["Sure, I can do that."]
    assert split_clauses("Sure: it is done.") == ["Sure: it is done."]
    assert split_clauses("Sure, ok", first_comma_chars=4) == ["Sure,", "ok"]


def test_clause_is_released_as_soon_as_the_next_word_starts() -> None:
    text = "Sunny and warm today! Anything else?"
    out = stream(text)
    first_at, first = out[0]
    assert first == "Sunny and warm today!"
    assert first_at == len("Sunny and warm today! ")  # one character of lookahead, no more


def test_period_after_a_long_word_needs_only_the_space() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("It is sunny in Francisco.") == []
    assert splitter.feed(" ") == ["It is sunny in Francisco."]


def test_decimal_split_across_deltas_is_not_a_boundary() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("It is 3.") == []
    assert splitter.feed("5 degrees") == []
    assert splitter.flush() == ["It is 3.5 degrees"]


def test_abbreviation_waits_for_the_next_word() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("Ask Mr. ") == []  # a title never ends a sentence
    assert splitter.feed("Smith. ") == ["Ask Mr. Smith."]  # a long word cannot be an abbreviation
    assert splitter.feed("I like it. ") == []  # "it." could be short for something: wait
    assert splitter.feed("Yes") == ["I like it."]
    assert splitter.feed(" at 5 p.m. ") == []
    assert splitter.feed("today.") == []
    assert splitter.flush() == ["Yes at 5 p.m. today."]


def test_run_on_text_is_cut_at_a_space() -> None:
    text = "word " * 100
    clauses = split_clauses(text, max_chars=60)
    assert all(len(c) <= 60 for c in clauses)
    assert " ".join(clauses).split() == text.split()


def test_flush_and_reset() -> None:
    splitter = ClauseSplitter()
    assert splitter.feed("Half a sent") == []
    assert splitter.flush() == ["Half a sent"]
    assert splitter.flush() == []
    splitter.feed("The first clause is long enough, then")
    splitter.reset()
    # After reset the comma rule applies again to the new first clause.
    assert splitter.feed("Another first clause here, and more ") == ["Another first clause here,"]


def test_a_long_first_sentence_is_cut_before_a_phrase_word() -> None:
    # Words after a comma too short to cut at still count, and so do words after an initial.
    assert split_clauses("Sure, I'd be happy to book it for you.") == ["Sure, I'd be happy", "to book it for you."]
    assert split_clauses('"Space Odyssey" by James H. Miller is a classic.') == [
        '"Space Odyssey" by James H. Miller',
        "is a classic.",
    ]
    assert split_clauses("Sure, here's a joke: why did it cross?") == ["Sure, here's a joke:", "why did it cross?"]
    assert split_clauses("Romeo and Juliet were written by William Shakespeare.") == [
        "Romeo and Juliet were written",
        "by William Shakespeare.",
    ]
    assert split_clauses("The weather in San Francisco is sunny with a mild breeze today. It is warm.") == [
        "The weather in San Francisco",
        "is sunny with a mild breeze today.",
        "It is warm.",
    ]
    # Short first sentences, and later sentences, are never cut at phrase words.
    assert split_clauses("It is sunny and warm. The wind is calm and the sky is clear and blue today.") == [
        "It is sunny and warm.",
        "The wind is calm and the sky is clear and blue today.",
    ]
