"""The conversation as text: the caller's partial and final transcripts, the agent's words."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["user", "agent"]


@dataclass
class TranscriptLine:
    turn_id: int
    role: Role
    text: str
    final: bool = False
    interrupted: bool = False


@dataclass
class TranscriptModel:
    lines: list[TranscriptLine] = field(default_factory=list)
    version: int = 0

    def clear(self) -> None:
        """Empty, for the next conversation (in place: the panels hold this model)."""
        self.lines.clear()
        self.version += 1

    def _line(self, turn_id: int, role: Role) -> TranscriptLine:
        for line in reversed(self.lines):
            if line.turn_id == turn_id and line.role == role:
                return line
        line = TranscriptLine(turn_id, role, "")
        # The user's line of a turn goes before the agent's, whatever order events arrive in.
        index = len(self.lines)
        if role == "user":
            for i, other in enumerate(self.lines):
                if other.turn_id == turn_id and other.role == "agent":
                    index = i
                    break
        self.lines.insert(index, line)
        return line

    def user_partial(self, turn_id: int, text: str) -> None:
        line = self._line(turn_id, "user")
        if not line.final:
            line.text = text
            self.version += 1

    def user_final(self, turn_id: int, text: str) -> None:
        line = self._line(turn_id, "user")
        line.text, line.final = text, True
        self.version += 1

    def agent_delta(self, turn_id: int, text: str) -> None:
        line = self._line(turn_id, "agent")
        sep = " " if line.text and not line.text.endswith(" ") and not text.startswith(" ") else ""
        line.text += sep + text
        self.version += 1

    def turn_completed(self, turn_id: int, user_text: str, agent_text: str, interrupted: bool) -> None:
        if user_text:
            self.user_final(turn_id, user_text)
        line = self._line(turn_id, "agent")
        # Only the words actually played count; an interrupted answer is cut where the caller spoke.
        line.text, line.final, line.interrupted = agent_text, True, interrupted
        self.version += 1

    def as_text(self) -> str:
        out = []
        for line in self.lines:
            who = "You" if line.role == "user" else "Agent"
            suffix = " [interrupted]" if line.interrupted else ("" if line.final else " …")
            out.append(f"{who}: {line.text}{suffix}")
        return "\n".join(out)
