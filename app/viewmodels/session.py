"""All view state of one app session, fed event by event (live from the bridge, or from a recording)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.viewmodels.agents import AgentsModel
from app.viewmodels.event_log import EventLogModel
from app.viewmodels.latency import LatencyModel
from app.viewmodels.levels import LevelsModel
from app.viewmodels.tool_calls import ToolCallsModel
from app.viewmodels.transcript import TranscriptModel
from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    AgentSpeakingChanged,
    AgentTextDelta,
    AudioLevel,
    ConversationStateChanged,
    EngineProgress,
    ErrorOccurred,
    Event,
    LoopStall,
    MetricMeasured,
    ToolCallUpdated,
    ToolsRegistered,
    TranscriptFinal,
    TranscriptPartial,
    TurnCompleted,
    TurnStarted,
    VadStateChanged,
)


@dataclass
class EngineStatus:
    component: str
    message: str
    fraction: float | None
    done: bool


@dataclass
class SessionModel:
    levels: LevelsModel = field(default_factory=LevelsModel)
    latency: LatencyModel = field(default_factory=LatencyModel)
    tool_calls: ToolCallsModel = field(default_factory=ToolCallsModel)
    transcript: TranscriptModel = field(default_factory=TranscriptModel)
    agents: AgentsModel = field(default_factory=AgentsModel)
    log: EventLogModel = field(default_factory=EventLogModel)
    engines: dict[str, EngineStatus] = field(default_factory=dict)
    conversation_id: str | None = None
    conversation_state: str = "idle"
    errors: list[ErrorOccurred] = field(default_factory=list)
    worst_stall_s: float = 0.0

    def apply_levels(self, levels: list[AudioLevel]) -> None:
        self.levels.add_levels(levels)

    def apply(self, event: Event) -> None:
        """Update the view state from one event (AudioLevel events may also come batched)."""
        if isinstance(event, AudioLevel):
            self.levels.add_levels([event])
            return
        self.log.add(event)
        match event:
            case ConversationStateChanged():
                self.conversation_id = event.conversation_id
                self.conversation_state = event.state
            case VadStateChanged():
                self.levels.set_vad(event.t, event.speaking)
            case AgentSpeakingChanged():
                self.levels.set_agent_speaking(event.t, event.speaking)
            case TurnStarted():
                self.levels.add_turn(event.speech_ended_at, event.turn_id)
            case TranscriptPartial():
                self.transcript.user_partial(event.turn_id, event.text)
            case TranscriptFinal():
                self.transcript.user_final(event.turn_id, event.text)
            case AgentTextDelta():
                self.transcript.agent_delta(event.turn_id, event.text)
            case TurnCompleted():
                self.transcript.turn_completed(event.turn_id, event.user_text, event.agent_text, event.interrupted)
                self.latency.complete_turn(
                    event.turn_id, event.metrics, event.user_text, event.agent_text, event.interrupted
                )
            case MetricMeasured():
                self.latency.add_metric(event.turn_id, event.name, event.value)
            case ToolCallUpdated():
                self.tool_calls.update(event)
            case AgentConnected():
                self.agents.connected(event.connection_id, event.customer_id, event.remote, event.t)
            case AgentDisconnected():
                self.agents.disconnected(event.connection_id)
            case ToolsRegistered():
                self.agents.tools_registered(event.connection_id, event.customer_id, event.tools)
            case EngineProgress():
                self.engines[event.component] = EngineStatus(event.component, event.message, event.fraction, event.done)
            case ErrorOccurred():
                self.errors.append(event)
            case LoopStall():
                self.worst_stall_s = max(self.worst_stall_s, event.duration_s)
