"""Typed, immutable events: every observable fact of the platform.

The GUI, the tests, the benchmarks and the call report all read these from one `EventBus`.
Each event carries `kind` (a discriminator usable for JSON records and replay) and `t`, the
publisher's `time.monotonic()` at the moment the fact was observed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Literal

ConversationState = Literal["connecting", "active", "ended"]
AudioSource = Literal["caller", "agent"]
ToolCallStatus = Literal["started", "done", "error", "timeout", "cancelled"]
MetricName = Literal[
    "end_of_turn_delay",
    "transcription_delay",
    "tool_choice",
    "tool_call",
    "llm_ttft",
    "llm_ttfs",
    "tts_ttfb",
    "e2e_latency",
    "answer_latency",
    "mouth_to_ear",
    "barge_in_delay",
]


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is, for every reader (call report, app view models and widgets, bench)."""

    name: MetricName
    label: str  # a short human name
    description: str
    stage: str | None = None  # the segment of the stacked latency bar it feeds; None: not a stage
    every_turn: bool = True  # measured on every answered turn (else only when it happened)
    per_tool_call: bool = False  # one value per tool call, not per turn


# Every metric (seconds), in the order they occur in a turn; the stacked bar's stages in this order.
METRICS: dict[MetricName, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo(
            "end_of_turn_delay",
            "endpointing",
            "the caller stopped speaking -> the turn was committed",
            stage="endpointing",
        ),
        MetricInfo(
            "transcription_delay", "transcription", "the caller stopped speaking -> the final transcript", stage="stt"
        ),
        MetricInfo(
            "tool_choice",
            "tool choice",
            "the LLM deciding whether to call a tool",
            stage="tool choice",
            every_turn=False,
        ),
        MetricInfo(
            "tool_call",
            "tool call",
            "one tool call, request -> result",
            stage="tools",
            every_turn=False,
            per_tool_call=True,
        ),
        MetricInfo("llm_ttft", "LLM first token", "the request to the LLM -> its first token"),
        MetricInfo(
            "llm_ttfs", "LLM first sentence", "the request to the LLM -> its first sentence for TTS", stage="llm"
        ),
        MetricInfo("tts_ttfb", "TTS first audio", "the first text handed to TTS -> its first audio", stage="tts"),
        MetricInfo(
            "e2e_latency",
            "voice-to-voice",
            "the caller stopped speaking -> the agent's first audio sent",
            stage="other",
        ),
        MetricInfo(
            "answer_latency",
            "answer",
            "the caller stopped speaking -> the first audio of the answer itself (after the tool's result where"
            " a tool ran); the same as voice-to-voice unless a filler was said first",
        ),
        MetricInfo(
            "mouth_to_ear",
            "mouth-to-ear",
            "From the moment you stopped speaking at the microphone to the agent's voice reaching the"
            " speaker: includes WebRTC, the jitter buffer and the audio devices.",
            stage="playout",
            every_turn=False,
        ),
        MetricInfo(
            "barge_in_delay", "barge-in", "the caller's speech arrived -> the agent's audio stopped", every_turn=False
        ),
    )
}
METRIC_NAMES: tuple[MetricName, ...] = tuple(METRICS)
# The platform measures these on every answered turn (the others only when they happen, or on the caller side).
TURN_METRICS: tuple[MetricName, ...] = tuple(n for n, m in METRICS.items() if m.every_turn)
LATENCY_STAGES: tuple[str, ...] = tuple(m.stage for m in METRICS.values() if m.stage)


def _now() -> float:
    return time.monotonic()


@dataclass(frozen=True, kw_only=True)
class Event:
    t: float = field(default_factory=_now)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        EVENT_TYPES[cls.__name__] = cls

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with the discriminator `kind`; `from_json` turns it back into the event."""
        return {"kind": self.kind, **dataclasses.asdict(self)}


EVENT_TYPES: dict[str, type[Event]] = {}  # kind -> event class, filled as the classes are defined


def from_json(data: dict[str, Any]) -> Event | None:
    """The typed event of a `to_json` record (after a JSON round trip), or None when it is not one:
    an unknown kind (a newer version wrote it) or missing fields. Unknown fields are ignored."""
    cls = EVENT_TYPES.get(str(data.get("kind")))
    if cls is None:
        return None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            # JSON has no tuples: a tuple field (ToolsRegistered.tools) comes back as a list.
            is_tuple = isinstance(f.type, str) and f.type.startswith("tuple")
            kwargs[f.name] = tuple(value) if is_tuple and isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError:
        return None


# --- conversations -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConversationStateChanged(Event):
    conversation_id: str
    agent_id: str | None
    state: ConversationState
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class AudioLevel(Event):
    """Level of one 20-32 ms block of caller or agent audio."""

    conversation_id: str
    source: AudioSource
    rms_dbfs: float
    peak: float  # 0..1


@dataclass(frozen=True, kw_only=True)
class VadStateChanged(Event):
    conversation_id: str
    speaking: bool


@dataclass(frozen=True, kw_only=True)
class TurnStarted(Event):
    """The caller's turn was committed (end of speech detected, or a typed turn)."""

    conversation_id: str
    turn_id: int
    speech_ended_at: float  # monotonic time the caller actually stopped speaking


@dataclass(frozen=True, kw_only=True)
class TranscriptPartial(Event):
    conversation_id: str
    turn_id: int
    text: str


@dataclass(frozen=True, kw_only=True)
class TranscriptFinal(Event):
    conversation_id: str
    turn_id: int
    text: str


@dataclass(frozen=True, kw_only=True)
class AgentTextDelta(Event):
    """A clause of the agent's answer handed to TTS."""

    conversation_id: str
    turn_id: int
    text: str
    filler: bool = False  # a holding phrase said while a slow tool runs, not part of the answer


@dataclass(frozen=True, kw_only=True)
class AgentSpeakingChanged(Event):
    conversation_id: str
    speaking: bool


@dataclass(frozen=True, kw_only=True)
class TurnCompleted(Event):
    """The agent's answer to a turn is over: fully played, or interrupted (barge-in, hang-up)."""

    conversation_id: str
    turn_id: int
    user_text: str
    agent_text: str  # only the words actually played
    interrupted: bool
    metrics: dict[str, float | None]


@dataclass(frozen=True, kw_only=True)
class MetricMeasured(Event):
    conversation_id: str
    turn_id: int
    name: str  # a MetricName (see METRICS)
    value: float  # seconds


# --- tools and agents ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ToolCallUpdated(Event):
    """One step of a tool call's lifecycle: started -> done | error | timeout | cancelled."""

    conversation_id: str
    turn_id: int | None
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: ToolCallStatus
    result: Any = None
    error: str | None = None
    duration_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class AgentConnected(Event):
    customer_id: str
    connection_id: str
    remote: str = ""


@dataclass(frozen=True, kw_only=True)
class AgentDisconnected(Event):
    customer_id: str
    connection_id: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ToolsRegistered(Event):
    customer_id: str
    conversation_id: str
    connection_id: str
    tools: tuple[dict[str, Any], ...]


# --- platform -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EngineProgress(Event):
    """Progress of preparing or loading an engine or model (fraction 0..1, or None if unknown)."""

    component: str  # e.g. "stt", "llm", "tts", "vad", or a model id
    message: str
    fraction: float | None = None
    done: bool = False


@dataclass(frozen=True, kw_only=True)
class ErrorOccurred(Event):
    """A failure explained: what happened, why, and what to do."""

    where: str
    message: str
    hint: str = ""
    conversation_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LoopStall(Event):
    """The asyncio event loop was blocked for longer than the watchdog's threshold."""

    duration_s: float
    where: str = ""  # the code the loop was stuck in, innermost frame first (sampled)
    # Where the loop thread's time went meanwhile (Linux; None elsewhere): running on a core, and
    # ready to run but waiting for one. The rest it was blocked (a lock, the X server, I/O).
    on_cpu_s: float | None = None
    waiting_for_cpu_s: float | None = None


PlatformEvent = (
    ConversationStateChanged
    | AudioLevel
    | VadStateChanged
    | TurnStarted
    | TranscriptPartial
    | TranscriptFinal
    | AgentTextDelta
    | AgentSpeakingChanged
    | TurnCompleted
    | MetricMeasured
    | ToolCallUpdated
    | AgentConnected
    | AgentDisconnected
    | ToolsRegistered
    | EngineProgress
    | ErrorOccurred
    | LoopStall
)
