"""The scenario model: what a QA scenario file says, as plain dataclasses (no I/O).

`loader.py` reads the YAML, validates it against the shipped JSON Schema and builds these; the driver
plays them, `expectations.py` checks the results against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRIGGERS = ("turn_started", "agent_text", "agent_speaking", "tool_started")  # what a barge-in waits for


@dataclass(frozen=True)
class AudioConditions:
    """How the caller's voice is degraded before it is sent (applied in this order)."""

    speed: float = 1.0  # >1 faster (and higher), like a tape played fast
    gain_db: float = 0.0
    telephone: bool = False  # 300-3400 Hz band, as on a phone line
    snr_db: float | None = None  # background noise at this signal-to-noise ratio
    noise: str = "pink"  # "white", "pink" or "hum"

    @property
    def changed(self) -> bool:
        return self != AudioConditions()


@dataclass(frozen=True)
class BargeIn:
    """Speak this turn over the previous answer: `delay_s` after the previous turn's `after` event."""

    after: str = "agent_speaking"
    delay_s: float = 0.5


@dataclass(frozen=True)
class ToolExpectation:
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # a subset, compared case-insensitively
    status: str = "done"  # done, error or timeout


@dataclass(frozen=True)
class Expectation:
    """Every check of one turn; None or empty means "not checked"."""

    transcript_contains: tuple[str, ...] = ()
    agent_says_any: tuple[str, ...] = ()
    agent_says_all: tuple[str, ...] = ()
    agent_not_says: tuple[str, ...] = ()
    agent_matches: str | None = None  # a regular expression, searched case-insensitively
    tools: tuple[ToolExpectation, ...] = ()
    no_tool: bool = False
    max_latency_s: dict[str, float] = field(default_factory=dict)
    interrupted: bool | None = None  # was the previous answer cut by this turn?
    agent_silent: bool = False  # the agent says nothing during this turn (silence, hold)
    judge: str | None = None  # a criterion an LLM judges on the turn's words


@dataclass(frozen=True)
class Turn:
    """One step of the caller: speech (`say` or `wav`), a typed `text`, or `silence_s` of silence."""

    index: int  # 1-based, as in reports
    line: int  # where it starts in the file
    say: str | None = None
    wav: Path | None = None
    text: str | None = None
    silence_s: float | None = None
    hold_s: float = 0.0  # the caller stays quiet this long before the turn
    audio: AudioConditions = AudioConditions()
    barge_in: BargeIn | None = None
    expect: Expectation = Expectation()

    @property
    def label(self) -> str:
        """What the caller does, in a few words (for reports)."""
        if self.say is not None:
            return f"say {self.say!r}"
        if self.wav is not None:
            return f"wav {self.wav.name}"
        if self.text is not None:
            return f"text {self.text!r}"
        return f"silence {self.silence_s:g} s"


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path  # the file it came from
    turns: tuple[Turn, ...]
    agent_file: Path | None = None  # started for the run
    agent_id: str | None = None  # the agent to call (a file's own id when only `agent:` is given)
    setup: dict[str, str] = field(default_factory=dict)  # handed to the started agent's environment
    timeout_s: float = 60.0  # per turn
    tags: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.path.stem}::{self.name}"
