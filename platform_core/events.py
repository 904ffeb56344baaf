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

# The metric registry lives in metrics.py; re-exported here, where every reader has imported it from.
from platform_core.metrics import LATENCY_STAGES as LATENCY_STAGES
from platform_core.metrics import METRIC_NAMES as METRIC_NAMES
from platform_core.metrics import METRICS as METRICS
from platform_core.metrics import TURN_METRICS as TURN_METRICS
from platform_core.metrics import MetricInfo as MetricInfo
from platform_core.metrics import MetricName as MetricName

ConversationState = Literal["connecting", "active", "ended"]
AudioSource = Literal["caller", "agent"]
ToolCallStatus = Literal["started", "done", "error", "timeout", "cancelled"]


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


TurnCommitReason = Literal["silence", "complete", "max_wait", "max_turn"]


@dataclass(frozen=True, kw_only=True)
class TurnHeld(Event):
    """At the silence endpoint the turn model judged the caller unfinished (a pause mid-sentence):
    the turn is held open for up to `wait_s` more; speech in that time joins the same turn."""

    conversation_id: str
    probability: float  # the model's probability that the turn was complete (under the threshold)
    wait_s: float  # the longest it is held
    model_s: float  # how long the model took
    speech_ended_at: float  # monotonic time the caller paused


@dataclass(frozen=True, kw_only=True)
class TurnCommitted(Event):
    """The end of the caller's turn was decided (a `TurnStarted` follows at once), and why:
    "silence" (silence alone, no turn model), "complete" (the model judged it finished),
    "max_wait" (held the longest allowed), "max_turn" (the turn reached its length limit)."""

    conversation_id: str
    reason: TurnCommitReason
    probability: float | None  # the model's last judgement, None when it was not asked
    held_s: float  # time the turn spent held (0.0 when never held)
    model_s: float | None = None  # how long the model's last judgement took


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
class AgentPaused(Event):
    """The caller started speaking over the agent: its audio is held (not dropped) until it is decided
    whether this is an interruption (`AgentInterrupted`) or not (`AgentResumed`)."""

    conversation_id: str
    turn_id: int  # the turn whose answer was paused (0: the greeting)


@dataclass(frozen=True, kw_only=True)
class AgentResumed(Event):
    """A false interruption: the caller's speech over the agent stopped too soon (a backchannel, a cough)
    or stayed undecided for the timeout; the agent goes on from where it paused, nothing lost."""

    conversation_id: str
    turn_id: int
    paused_s: float  # how long the agent was silent
    speech_s: float  # the caller's speech that paused it
    reason: str  # "speech ended" | "timeout"


@dataclass(frozen=True, kw_only=True)
class AgentInterrupted(Event):
    """The caller's speech over the agent was enough to interrupt it: the paused answer is dropped (only
    its played words stay in the history) and the caller's words become the next turn."""

    conversation_id: str
    turn_id: int
    speech_s: float  # the caller's speech that decided it
    words: int  # recognised words of it when decided (0 when only the duration is required)
    paused_s: float  # from the pause to the decision


@dataclass(frozen=True, kw_only=True)
class TurnCompleted(Event):
    """The agent's answer to a turn is over: fully played, or interrupted (barge-in, hang-up)."""

    conversation_id: str
    turn_id: int
    user_text: str
    agent_text: str  # only the words actually played
    interrupted: bool
    metrics: dict[str, float | None]
    # How long before the turn was committed its LLM work started, at the caller's pause (None: it did not).
    llm_head_start_s: float | None = None


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
    turn_id: int | None = None  # set when this turn failed (it was not answered, or only with an apology)


@dataclass(frozen=True, kw_only=True)
class EngineHealthChanged(Event):
    """An engine died and is restarting, could not be restarted ("failed"), or is back ("ok")."""

    engine: str  # "llm", "stt", "tts"
    state: str  # "ok" | "restarting" | "failed"
    reason: str = ""
    restart_s: float | None = None  # with "ok" after a restart: from the death noticed to serving again


@dataclass(frozen=True, kw_only=True)
class LLMQueued(Event):
    """A turn waits for the language model: its every slot is serving other callers."""

    conversation_id: str
    turn_id: int
    ahead: int  # requests running or waiting before this one
    max_wait_s: float  # after this wait the turn is answered "busy"


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
    | TurnHeld
    | TurnCommitted
    | TranscriptPartial
    | TranscriptFinal
    | AgentTextDelta
    | AgentSpeakingChanged
    | AgentPaused
    | AgentResumed
    | AgentInterrupted
    | TurnCompleted
    | MetricMeasured
    | ToolCallUpdated
    | AgentConnected
    | AgentDisconnected
    | ToolsRegistered
    | EngineProgress
    | ErrorOccurred
    | EngineHealthChanged
    | LLMQueued
    | LoopStall
)
