"""Every conversation saved: both audio tracks, the transcript, timestamped events; reopen and export.

A conversation folder holds
  caller.wav, agent.wav   48 kHz mono int16, what was sent / what was received
  events.jsonl            one event per line (`kind` + fields, `t` = monotonic seconds)
  transcript.json         [{turn_id, role, text, interrupted}]
  metrics.json            the same as File > Export metrics as JSON
  meta.json               ids, times, and each track's start time to align them with the events
Events are written as they happen (flushed on every non-level event), so a crash loses at most
the last audio buffers, never the conversation.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from app.viewmodels.latency import TURN_SUMMARY_METRICS, LatencyModel
from app.viewmodels.session import SessionModel
from app.viewmodels.tool_calls import ToolCallsModel
from platform_core import (
    WEBRTC_RATE,
    AudioFileError,
    StudioError,
    WavWriter,
    read_audio,
    user_data_dir,
    write_text_atomic,
)
from platform_core import events as ev

RATE = WEBRTC_RATE


def conversations_dir() -> Path:
    return user_data_dir() / "conversations"


class _WavTrack:
    """One side's recording, and the monotonic time of its first sample (to align it with the events)."""

    def __init__(self, path: Path) -> None:
        self._writer = WavWriter(path, RATE)
        self.started_at: float | None = None

    @property
    def samples(self) -> int:
        return self._writer.samples_written

    def write(self, samples: np.ndarray, t: float) -> None:
        if self.started_at is None:
            self.started_at = t
        self._writer.write(samples)

    def close(self) -> None:
        self._writer.close()


class ConversationRecorder:
    """Records one call. Feed it events and audio on the loop thread; `close` finishes the folder."""

    def __init__(self, root: Path | None = None, *, agent_id: str | None = None, input_name: str = "") -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = root or conversations_dir()
        self.folder = base / stamp
        n = 1
        while self.folder.exists():
            n += 1
            self.folder = base / f"{stamp}-{n}"
        self.folder.mkdir(parents=True)
        self.meta: dict[str, Any] = {
            "started": datetime.now().isoformat(timespec="seconds"),
            "started_monotonic": time.monotonic(),
            "agent_id": agent_id,
            "input": input_name,
            "conversation_id": None,
        }
        self.caller = _WavTrack(self.folder / "caller.wav")
        self.agent = _WavTrack(self.folder / "agent.wav")
        # Kept open for the whole call (closed in `close`), so every event is on disk as it happens.
        self._events: IO[str] | None = open(self.folder / "events.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self.session = SessionModel()  # the recording's own view: it exports metrics and transcript

    def bind(self, conversation_id: str) -> None:
        """The call is connected as `conversation_id`: from now on only its events are kept."""
        self.meta["conversation_id"] = conversation_id
        self.session.follow(conversation_id)

    def on_event(self, event: ev.Event) -> None:
        if self._events is None:
            return
        cid = getattr(event, "conversation_id", None)
        if cid and self.meta["conversation_id"] and cid != self.meta["conversation_id"]:
            return  # another conversation on the same platform
        self._events.write(json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n")
        if not isinstance(event, ev.AudioLevel):
            self._events.flush()
        self.session.apply(event)

    def on_caller_audio(self, samples: np.ndarray, t: float) -> None:
        self.caller.write(samples, t)

    def on_agent_audio(self, samples: np.ndarray, t: float) -> None:
        self.agent.write(samples, t)

    def close(self) -> Path:
        """Finish every file; safe to call twice."""
        if self._events is None:
            return self.folder
        self._events.close()
        self._events = None
        self.caller.close()
        self.agent.close()
        self.meta.update(
            ended=datetime.now().isoformat(timespec="seconds"),
            caller_started_monotonic=self.caller.started_at,
            agent_started_monotonic=self.agent.started_at,
            caller_seconds=self.caller.samples / RATE,
            agent_seconds=self.agent.samples / RATE,
        )
        _write_json(self.folder / "meta.json", self.meta)
        _write_json(self.folder / "transcript.json", transcript_json(self.session))
        _write_json(self.folder / "metrics.json", metrics_json(self.session.latency, self.session.tool_calls))
        return self.folder


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, _json_text(data))


def transcript_json(session: SessionModel) -> list[dict[str, Any]]:
    return [
        {"turn_id": line.turn_id, "role": line.role, "text": line.text, "interrupted": line.interrupted}
        for line in session.transcript.lines
    ]


# --- reopening --------------------------------------------------------------------------------------


@dataclass
class SavedConversation:
    folder: Path
    meta: dict[str, Any]
    events: list[ev.Event]
    caller_audio: np.ndarray
    agent_audio: np.ndarray
    skipped_lines: int = 0
    session: SessionModel = field(default_factory=SessionModel)


class RecordingError(StudioError):
    """A saved conversation that cannot be opened; `hint` says what to do."""


def _read_wav(path: Path) -> np.ndarray:
    """A track's samples; none for a track never written (nothing said) or unreadable."""
    try:
        return read_audio(path, RATE)
    except AudioFileError:
        return np.zeros(0, dtype=np.int16)


def load_conversation(folder: Path) -> SavedConversation:
    """Read a conversation folder and replay its events into a fresh SessionModel."""
    events_path = folder / "events.jsonl"
    if not events_path.exists():
        raise RecordingError(
            f"{folder} is not a saved conversation (no events.jsonl).",
            f"Choose a folder inside {conversations_dir()}.",
        )
    meta: dict[str, Any] = {}
    if (folder / "meta.json").exists():
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except ValueError:
            meta = {}
    events: list[ev.Event] = []
    skipped = 0
    for line in events_path.read_text(encoding="utf-8").splitlines():
        try:
            event = ev.from_json(json.loads(line))
        except ValueError:  # a line cut short by a crash
            event = None
        if event is None:
            skipped += 1
        else:
            events.append(event)
    saved = SavedConversation(
        folder, meta, events, _read_wav(folder / "caller.wav"), _read_wav(folder / "agent.wav"), skipped
    )
    for event in events:
        saved.session.apply(event)
    return saved


# --- metrics export --------------------------------------------------------------------------------

CSV_COLUMNS = (
    "turn_id",
    "interrupted",
    *TURN_SUMMARY_METRICS,
    "tool_calls",
    "tool_call_total",
    "user_text",
    "agent_text",
)


def metrics_json(latency: LatencyModel, tool_calls: ToolCallsModel) -> dict[str, Any]:
    """Per turn metrics (seconds), p50/p95 over the conversation, every tool call."""
    return {
        "unit": "seconds",
        "turns": [
            {
                "turn_id": t.turn_id,
                "interrupted": t.interrupted,
                "metrics": dict(t.metrics),
                "stages": t.stages(),
                "tool_calls": list(t.tool_calls),
                "user_text": t.user_text,
                "agent_text": t.agent_text,
            }
            for t in latency.ordered()
        ],
        "summary": latency.summary(),
        "tool_calls": [row.to_json() for row in tool_calls.ordered()],
    }


def metrics_csv(latency: LatencyModel) -> str:
    """One row per turn; empty cells for metrics the turn did not produce."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for t in latency.ordered():
        row: list[Any] = [t.turn_id, t.interrupted]
        row += [t.metrics.get(m, "") for m in TURN_SUMMARY_METRICS]
        row += [len(t.tool_calls), sum(t.tool_calls), t.user_text, t.agent_text]
        writer.writerow(row)
    return out.getvalue()


def export_metrics(session: SessionModel, path: Path, fmt: str) -> Path:
    if fmt == "csv":
        text = metrics_csv(session.latency)
    elif fmt == "json":
        text = _json_text(metrics_json(session.latency, session.tool_calls))
    else:
        raise ValueError(f"unknown export format {fmt!r}; use 'csv' or 'json'")
    return write_text_atomic(path, text, create_folder=False)  # into the folder the person chose, or fail
