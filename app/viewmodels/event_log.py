"""A bounded, human-readable log of every event except the high-rate audio levels."""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from platform_core.events import Event

_SKIP = {"t", "conversation_id"}


def summarize(event: Event) -> str:
    data = event.to_json()
    parts = []
    for key, value in data.items():
        if key in _SKIP or key == "kind" or value in (None, "", {}, ()):
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if len(text) > 120:
            text = text[:117] + "..."
        parts.append(f"{key}={text}")
    return " ".join(parts)


@dataclass
class LogEntry:
    t: float
    kind: str
    text: str
    severity: str = "info"  # "info" | "warning" | "error"


@dataclass
class EventLogModel:
    maxlen: int = 5000
    entries: deque[LogEntry] = field(init=False)
    total: int = 0  # entries ever added: the widget appends the ones it has not shown yet

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.maxlen)

    def add(self, event: Event) -> None:
        severity = {"ErrorOccurred": "error", "LoopStall": "warning", "AgentDisconnected": "warning"}.get(
            event.kind, "info"
        )
        self.entries.append(LogEntry(event.t, event.kind, summarize(event), severity))
        self.total += 1

    def since(self, seen_total: int) -> list[LogEntry]:
        """Entries added after the widget had seen `seen_total` of them (at most `maxlen`)."""
        new = self.total - seen_total
        if new <= 0:
            return []
        return list(self.entries)[-min(new, len(self.entries)) :]
