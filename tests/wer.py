"""Word error rate: how far a transcript is from what was said, in words.

WER = (substitutions + deletions + insertions) / words said, after lower-casing and dropping punctuation.
Over several utterances it is the total of their errors over the total of their words (a corpus WER),
so one long sentence does not weigh less than a short one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The transcript is of this utterance, without depending on any one word (for tests whose point is not
# accuracy): two misheard words of a six-word question pass (0.33), another question that shares its
# first three words does not (0.5), nor does nothing (1.0).
SAME_UTTERANCE = 0.4


def normalized_words(text: str) -> list[str]:
    """The words of `text` in order, lower case, without punctuation."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(said: str, heard: str) -> int:
    """The fewest substitutions, deletions and insertions that turn `said` into `heard` (Levenshtein on words)."""
    ref, hyp = normalized_words(said), normalized_words(heard)
    previous = list(range(len(hyp) + 1))  # distance from an empty reference to each prefix of hyp
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]


def word_error_rate(pairs: Iterable[tuple[str, str]]) -> float:
    """The corpus WER of (said, heard) pairs: all their word errors over all the words said."""
    errors = total = 0
    for said, heard in pairs:
        errors += word_errors(said, heard)
        total += len(normalized_words(said))
    if total == 0:
        raise ValueError("no words said: the word error rate is undefined")
    return errors / total


def wer(said: str, heard: str) -> float:
    """The WER of one utterance."""
    return word_error_rate([(said, heard)])
