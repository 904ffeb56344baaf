"""The word error rate helper the transcription tests state their accuracy in."""

from __future__ import annotations

import pytest

from tests.wer import SAME_UTTERANCE, normalized_words, wer, word_error_rate, word_errors


def test_words_are_compared_without_case_or_punctuation() -> None:
    assert normalized_words("What's the weather in Paris?") == ["what's", "the", "weather", "in", "paris"]
    assert wer("What is the weather in Paris?", "what is the weather in paris") == 0.0


def test_each_kind_of_error_counts_one() -> None:
    said = "what is the weather in paris"
    assert word_errors(said, "what is the weather in pairs") == 1  # substitution
    assert word_errors(said, "what is weather in paris") == 1  # deletion
    assert word_errors(said, "what is the the weather in paris") == 1  # insertion
    assert word_errors(said, "") == 6 and word_errors("", "hello there") == 2
    assert wer(said, "what is the weather in pairs") == pytest.approx(1 / 6)


def test_the_fewest_edits_are_counted_not_a_position_by_position_diff() -> None:
    # Shifted by one word: a naive comparison would count every word wrong.
    assert word_errors("a b c d e", "x a b c d e") == 1
    assert word_errors("a b c d e", "b c d e") == 1
    assert wer("one two three", "three two one") == pytest.approx(2 / 3)


def test_a_corpus_rate_weighs_each_utterance_by_its_words() -> None:
    pairs = [
        ("one two three four five six seven eight nine ten", "one two three four five six seven eight nine"),
        ("yes", "no"),
    ]
    assert word_error_rate(pairs) == pytest.approx(2 / 11)  # not the mean of 0.1 and 1.0
    with pytest.raises(ValueError, match="undefined"):
        word_error_rate([("", "anything")])


def test_the_same_utterance_bar_tells_a_misheard_word_from_another_sentence() -> None:
    said = "What is the weather in Paris?"
    assert wer(said, "What is the weather in pairs?") <= SAME_UTTERANCE
    assert wer(said, "What is the capital of France?") > SAME_UTTERANCE
    assert wer(said, "") > SAME_UTTERANCE
