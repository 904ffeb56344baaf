"""Cut streamed LLM text into clauses for TTS, each handed over as soon as it is complete.

A clause ends at ". ! ? ;" or a line break followed by whitespace (so "3.5", "10:30" and "e.g.x"
never split), after closing quotes or brackets are taken along. The first clause may also end at
", " or ": " once it is `first_comma_chars` long: the caller hears the answer start sooner. Later commas
do not split (many tiny TTS calls sound choppy). "." after a title or an initial (Mr., Dr., J.) or
before a lowercase word (e.g. this, 5 p.m. today) is not an end. A long first sentence may also end
before a phrase word ("and", "with", "in", ...) once it has `first_phrase_words` words, so the first
audio never waits for a whole long sentence to be generated and synthesized. Pure code, no I/O.
"""

from __future__ import annotations

import re

_ENDS = ".!?;\n"
_FIRST_ONLY = ",:"  # also end the first clause, once it is long enough
_CLOSERS = "\"')]}\u201d\u2019"
# Never end a sentence: a name or number follows.
_TITLES = frozenset(
    "mr mrs ms dr prof st sr jr mt no nos vs fig approx dept e.g i.e cf ca gen col lt sgt capt rev".split()  # noqa: SIM905
)
# End a sentence only when a capitalised word follows ("at 5 p.m. Then ..." vs "5 p.m. today").
_MAYBE_END = frozenset(
    "etc a.m p.m u.s u.k inc ltd co jan feb mar apr jun jul aug sep sept oct nov dec".split()  # noqa: SIM905
)
# Words that start a phrase: a natural place to cut a long first sentence.
_PHRASE_STARTS = frozenset(
    (
        "and",
        "but",
        "or",
        "so",
        "because",
        "with",
        "without",
        "in",
        "on",
        "at",
        "for",
        "to",
        "from",
        "which",
        "that",
        "when",
        "where",
        "while",
        "if",
        "than",
        "is",
        "are",
        "was",
        "were",
        "will",
        "can",
        "by",
        "about",
        "as",
        "into",
        "after",
        "before",
        "until",
        "since",
        "like",
        "has",
        "have",
        "had",
    )
)
_LAST_WORD = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_SPEAKABLE = re.compile(r"\w")


class ClauseSplitter:
    def __init__(self, *, first_comma_chars: int = 10, first_phrase_words: int = 4, max_chars: int = 240) -> None:
        self.first_comma_chars = first_comma_chars
        self.first_phrase_words = first_phrase_words
        self.max_chars = max_chars  # a run-on clause is cut at its last space beyond this
        self._buf = ""
        self._pos = 0  # where scanning resumes: text before it holds no boundary
        self._emitted = 0

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the clauses it completed (possibly none)."""
        self._buf += delta
        out: list[str] = []
        while (clause := self._next_clause()) is not None:
            self._emit(clause, out)
        return out

    def flush(self) -> list[str]:
        """End of stream: whatever is left is the last clause."""
        out: list[str] = []
        self._emit(self._buf, out)
        self._buf, self._pos = "", 0
        return out

    def reset(self) -> None:
        self._buf, self._pos, self._emitted = "", 0, 0

    def _emit(self, text: str, out: list[str]) -> None:
        clause = " ".join(text.split())
        if _SPEAKABLE.search(clause):  # a lone "!" or "..." left over is not worth a TTS call
            out.append(clause)
            self._emitted += 1

    def _next_clause(self) -> str | None:
        buf = self._buf
        end, pending = self._first_boundary()
        limit = end or pending or len(buf)  # a phrase cut must come before the first sentence end
        if self._emitted == 0 and (cut := self._phrase_cut(limit)):
            clause, self._buf, self._pos = buf[:cut], buf[cut:], 0
            return clause
        if end:
            clause, self._buf, self._pos = buf[:end], buf[end:], 0
            return clause
        if pending is None and len(buf) > self.max_chars and (cut := buf.rfind(" ", 0, self.max_chars)) > 0:
            clause, self._buf, self._pos = buf[:cut], buf[cut:], 0
            return clause
        return None

    def _first_boundary(self) -> tuple[int, int | None]:
        """(end of the first clause, or 0; where an undecided mark waits for more text, or None)."""
        buf = self._buf
        i = self._pos
        while i < len(buf):
            ch = buf[i]
            if ch in _ENDS or (ch in _FIRST_ONLY and self._emitted == 0):
                verdict = self._boundary(i)
                if verdict is None:  # cannot tell yet: wait for more text
                    self._pos = i
                    return 0, i
                if verdict:
                    return verdict, None
            i += 1
        self._pos = len(buf)
        return 0, None

    def _phrase_cut(self, limit: int) -> int:
        """Where to cut a long first sentence (before a phrase word, within `limit`), or 0."""
        words = list(re.finditer(r"\S+(?=\s)", self._buf[:limit]))  # complete words only
        for n, word in enumerate(words):
            if n >= self.first_phrase_words and word.group().lower() in _PHRASE_STARTS:
                return word.start()
        return 0

    def _boundary(self, i: int) -> int | None:
        """End index of the clause whose punctuation is at `i`, 0 if not a boundary, None if unknown."""
        buf = self._buf
        ch = buf[i]
        if ch == "\n":
            return i + 1 if buf[:i].strip() else 0
        j = i + 1
        while j < len(buf) and buf[j] in _CLOSERS:
            j += 1
        if j == len(buf):
            return None
        if not buf[j].isspace():
            return 0
        if ch in _FIRST_ONLY:
            return j if len(buf[:i].strip()) >= self.first_comma_chars else 0
        if ch == ".":
            return self._period(i, j)
        return j

    def _period(self, i: int, j: int) -> int | None:
        buf = self._buf
        match = _LAST_WORD.search(buf[:i])
        word = match.group(1) if match else ""
        rest = buf[j:].lstrip()
        nxt = rest[0] if rest else ""
        if word.lower() in _TITLES or (len(word) == 1 and word.isupper()):
            return 0
        if not nxt:  # the next word decides, unless this one cannot be an abbreviation
            return j if not _could_abbreviate(word) else None
        if nxt.islower():
            return 0
        if word.lower() in _MAYBE_END:
            return j if nxt.isupper() else 0
        return j


def _could_abbreviate(word: str) -> bool:
    w = word.lower()
    return w in _MAYBE_END or "." in w or len(w) <= 3


def split_clauses(text: str, **options: int) -> list[str]:
    """All clauses of a complete text (for tests and non-streamed replies)."""
    splitter = ClauseSplitter(**options)
    return splitter.feed(text) + splitter.flush()
