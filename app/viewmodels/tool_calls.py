"""Live tool calls: one row per call, updated as its status changes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from platform_core.events import ToolCallUpdated


@dataclass
class ToolCallRow:
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: str
    started_at: float
    turn_id: int | None = None
    conversation_id: str = ""
    result: Any = None
    error: str | None = None
    duration_s: float | None = None
    history: list[tuple[float, str]] = field(default_factory=list)  # (t, status)

    @property
    def finished(self) -> bool:
        return self.status != "started"

    def elapsed(self, now: float) -> float:
        """Final duration when finished, time running so far otherwise."""
        if self.duration_s is not None:
            return self.duration_s
        return max(0.0, now - self.started_at)

    def outcome_text(self) -> str:
        if self.error:
            return self.error
        if self.result is None:
            return ""
        return json.dumps(self.result, ensure_ascii=False, default=str)

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "name": self.name,
            "arguments": self.arguments,
            "status": self.status,
            "duration_s": self.duration_s,
            "result": self.result,
            "error": self.error,
            "history": [{"t": t, "status": s} for t, s in self.history],
        }

    def full_json(self) -> str:
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False, default=str)


@dataclass
class ToolCallsModel:
    rows: dict[str, ToolCallRow] = field(default_factory=dict)  # insertion order = start order
    version: int = 0

    def clear(self) -> None:
        """Empty, for the next conversation (in place: the panels hold this model)."""
        self.rows.clear()
        self.version += 1

    def update(self, event: ToolCallUpdated) -> ToolCallRow:
        row = self.rows.get(event.call_id)
        if row is None:
            row = ToolCallRow(
                call_id=event.call_id,
                name=event.name,
                arguments=dict(event.arguments),
                status=event.status,
                started_at=event.t - (event.duration_s or 0.0) if event.status != "started" else event.t,
                turn_id=event.turn_id,
                conversation_id=event.conversation_id,
            )
            self.rows[event.call_id] = row
        row.status = event.status
        row.arguments = dict(event.arguments) or row.arguments
        if event.result is not None:
            row.result = event.result
        if event.error is not None:
            row.error = event.error
        if event.duration_s is not None:
            row.duration_s = event.duration_s
        row.history.append((event.t, event.status))
        self.version += 1
        return row

    def ordered(self) -> list[ToolCallRow]:
        return list(self.rows.values())
