"""Whether a tool argument the LLM chose was said in the conversation, or invented.

A small model that wrongly picks a tool fills its arguments with inventions ("capital of France?" ->
lookup_customer(id="1")); values taken from what was said share a word with it. Spoken words are not
always the value's words, though: "ten" is 10, "three in the afternoon" is 15:00, "tomorrow" becomes
an ISO date the model works out from today's date (in its prompt). Those count as said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from platform_core.pipeline.tools import ToolSpec

_WORD = re.compile(r"[a-z]+|[0-9]+")
_UNITS = str.split(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    " seventeen eighteen nineteen"
)
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_NUMBER_WORDS = {word: n for n, word in enumerate(_UNITS)} | _TENS | {"noon": 12, "midnight": 0, "half": 30}
# Words that name a day: an ISO date the model wrote for them is its arithmetic, not an invention.
_DAY_WORDS = set(
    str.split(
        "today tomorrow tonight yesterday week weekend next monday tuesday wednesday thursday friday saturday"
        " sunday january february march april may june july august september october november december"
    )
)
_ISO_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_CLOCK = re.compile(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm)?")


def said_words(text: str) -> set[str]:
    """The words and numbers of `text`; numbers by value ("05" is "5"), spoken ones too ("forty two" is 42)."""
    found = _WORD.findall(text.lower())
    words = {w.lstrip("0") or "0" if w.isdigit() else w for w in found}
    for i, word in enumerate(found):
        if word in _NUMBER_WORDS:
            value = _NUMBER_WORDS[word]
            words.add(str(value))
            following = found[i + 1] if i + 1 < len(found) else ""
            if word in _TENS and _NUMBER_WORDS.get(following, 10) < 10:
                words.add(str(value + _NUMBER_WORDS[following]))
    return words


def _clock_grounded(value: str, said: set[str]) -> bool:
    """ "15:00" is grounded by "3" (or "three"), "15" or "noon"-as-12: the hour was said."""
    match = _CLOCK.fullmatch(value.strip().lower())
    if match is None:
        return False
    hour = int(match.group(1)) % 24
    return bool({str(hour), str(hour % 12 or 12)} & said)


def grounded(value: str, said: set[str]) -> bool:
    """A value is grounded when one of its words was said, or nearly: the model may normalise a name
    ("Lisbon" -> "Lisboa"), so words of 4+ letters that share their first 4 also count."""
    if _ISO_DATE.fullmatch(value.strip()) and said & _DAY_WORDS:
        return True
    if _clock_grounded(value, said):
        return True
    words = said_words(value)
    if said & words:
        return True
    stems = {w[:4] for w in said if len(w) >= 4 and w.isalpha()}
    return any(len(w) >= 4 and w.isalpha() and w[:4] in stems for w in words)


def ungrounded_arguments(spec: ToolSpec, args: Mapping[str, Any], context: str) -> list[str]:
    """Required string arguments of `args` that nothing in `context` (the conversation) grounds."""
    said = said_words(context)
    return [
        name
        for name in (spec.parameters or {}).get("required", [])
        if isinstance(args.get(name), str) and not grounded(args[name], said)
    ]
