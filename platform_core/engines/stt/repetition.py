"""Whisper's decoder loops, undone: "Tell me a joke. Tell me a joke. Tell me a" -> "Tell me a joke."

With a reduced audio_ctx whisper sometimes loops over the utterance until its token cap, and a turn
joined across a pause (held by the turn model) makes it likelier. A loop does not always repeat the
whole utterance cleanly: its copies change their punctuation ("A leap year." then "A leap year?"),
fall back to the last word ("... the weather in Paris. Paris. Paris."), or drop the first sentence
("Listman? Listman?"). Pure code.
"""

from __future__ import annotations

import re

__all__ = ["collapse_repetition"]

_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_WORD = re.compile(r"[a-z0-9']+")


def collapse_repetition(text: str) -> str:
    """The text up to where it starts looping; unchanged when it does not.

    It loops after its first k sentences when the rest is a copy of them (the last copy possibly cut
    off), or when the rest is two or more sentences each of which is one of them, a cut-off copy of
    one, or the end of the k-th (compared by their words, not their punctuation)."""
    sentences = [m.group().strip() for m in _SENTENCE.finditer(text) if m.group().strip()]
    words = [tuple(_WORD.findall(s.lower())) for s in sentences]
    for k in range(1, len(sentences)):
        head, rest = words[:k], words[k:]
        if _a_copy(head, rest) or (len(rest) >= 2 and all(_echoes(s, head) for s in rest)):
            return " ".join(sentences[:k])
    return text


def _a_copy(head: list[tuple[str, ...]], rest: list[tuple[str, ...]]) -> bool:
    """`rest` is `head` said again, once or more, the last time possibly cut off."""
    flat_head = [w for s in head for w in s]
    flat_rest = [w for s in rest for w in s]
    if len(flat_rest) < len(flat_head) or not flat_head:
        return False
    copies = flat_head * (len(flat_rest) // len(flat_head) + 1)
    return copies[: len(flat_rest)] == flat_rest


def _echoes(sentence: tuple[str, ...], head: list[tuple[str, ...]]) -> bool:
    """One of `head`'s sentences again (or its start, cut off), or the end of the last one."""
    if not sentence:
        return True
    last = head[-1]
    return any(s[: len(sentence)] == sentence for s in head) or last[len(last) - len(sentence) :] == sentence
