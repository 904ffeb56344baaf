"""All view state of one app session, fed event by event (live from the bridge, or from a recording).

The panels follow one conversation at a time: the app's own call, a QA run's call or a browser's, each
on the platform the app hosts. A conversation that starts while none is live becomes the followed one
and the conversation panels (transcript, latency, tool calls) start afresh for it; the events of other
conversations running at the same time stay out of them (each call is in its own recording).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.viewmodels.agents import AgentsModel
from app.viewmodels.event_log import EventLogModel
from app.viewmodels.latency import LatencyModel
from app.viewmodels.levels import LevelsModel, decision_label
from app.viewmodels.tool_calls import ToolCallsModel
from app.viewmodels.transcript import TranscriptModel
from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    AgentInterrupted,
    AgentPaused,
    AgentResumed,
    AgentSpeakingChanged,
    AgentTextDelta,
    AudioLevel,
    ConversationStateChanged,
    EngineHealthChanged,
    EngineProgress,
    ErrorOccurred,
    Event,
    LoopStall,
    MetricMeasured,
    ToolCallUpdated,
    ToolsRegistered,
    TranscriptFinal,
    TranscriptPartial,
    TurnCommitted,
    TurnCompleted,
    TurnHeld,
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
    engine_health: dict[str, EngineHealthChanged] = field(default_factory=dict)  # the latest per engine
    conversation_id: str | None = None  # the conversation the panels follow
    conversation_state: str = "idle"  # its state
    conversations_started: int = 0  # how many conversations the panels have followed
    errors: list[ErrorOccurred] = field(default_factory=list)
    worst_stall_s: float = 0.0

    def engine_problems(self) -> list[str]:
        """One line per engine that is not ok now: "llm restarting: llama.cpp exited: killed by signal 9"."""
        return [f"{e.engine} {e.state}: {e.reason}" for e in self.engine_health.values() if e.state != "ok"]

    def apply_levels(self, levels: list[AudioLevel]) -> None:
        self.levels.add_levels([level for level in levels if self._is_followed(level)])

    def follow(self, conversation_id: str) -> None:
        """Show `conversation_id` in the panels from now on, starting them afresh."""
        if conversation_id == self.conversation_id:
            return
        self.conversation_id = conversation_id
        self.conversation_state = "connecting"
        self.conversations_started += 1
        self.transcript.clear()
        self.latency.clear()
        self.tool_calls.clear()

    def _is_followed(self, event: Event) -> bool:
        """Whether the panels show `event`: not a conversation's, or the followed conversation's, or the
        first state of a new conversation while the followed one is over, or any while none was followed
        (the panels then follow that conversation)."""
        conversation_id = getattr(event, "conversation_id", None)
        if conversation_id is None or conversation_id == self.conversation_id:
            return True
        starts = isinstance(event, ConversationStateChanged) and event.state != "ended"
        if self.conversation_id is None or (starts and self.conversation_state in ("idle", "ended")):
            self.follow(conversation_id)
            return True
        return False

    def apply(self, event: Event) -> None:
        """Update the view state from one event (AudioLevel events may also come batched)."""
        if not self._is_followed(event):
            return
        if isinstance(event, AudioLevel):
            self.levels.add_levels([event])
            return
        self.log.add(event)
        match event:
            case ConversationStateChanged():
                self.conversation_state = event.state
            case VadStateChanged():
                self.levels.set_vad(event.t, event.speaking)
            case AgentSpeakingChanged():
                self.levels.set_agent_speaking(event.t, event.speaking)
            case TurnStarted():
                self.levels.add_turn(event.speech_ended_at, event.turn_id)
            case AgentPaused() | AgentResumed() | AgentInterrupted() | TurnHeld() | TurnCommitted():
                if label := decision_label(event):
                    self.levels.add_decision(event.t, label)
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
            case EngineHealthChanged():
                self.engine_health[event.engine] = event
            case ErrorOccurred():
                self.errors.append(event)
            case LoopStall():
                self.worst_stall_s = max(self.worst_stall_s, event.duration_s)
