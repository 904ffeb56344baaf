"""Per-turn latency: the stages of each turn, their time series and percentiles.

Stacked stages (seconds, all measured from the moment the caller stopped speaking):
  endpointing   = end_of_turn_delay                         (waiting for silence to commit the turn)
  stt           = transcription_delay - end_of_turn_delay   (transcript still running after commit)
  tool choice   = tool_choice                               (the LLM deciding whether to call a tool)
  tools         = sum of the turn's tool call durations
  llm           = llm_ttfs                                  (request -> first sentence for TTS)
  tts           = tts_ttfb                                  (first text -> first audio)
  other         = e2e_latency - the stages above            (queues, scheduling, framing)
  playout       = mouth_to_ear - e2e_latency                (WebRTC, jitter buffer, device buffers)
The bar's height is then mouth_to_ear when the desktop measured it, e2e_latency otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from platform_core.events import LATENCY_STAGES, METRIC_NAMES, METRICS

STAGES: tuple[str, ...] = LATENCY_STAGES
SUMMARY_METRICS: tuple[str, ...] = METRIC_NAMES
PER_TOOL_CALL = frozenset(name for name, info in METRICS.items() if info.per_tool_call)  # tool_call
TURN_SUMMARY_METRICS: tuple[str, ...] = tuple(name for name in SUMMARY_METRICS if name not in PER_TOOL_CALL)


@dataclass
class TurnLatency:
    turn_id: int
    metrics: dict[str, float] = field(default_factory=dict)
    tool_calls: list[float] = field(default_factory=list)
    completed: bool = False
    interrupted: bool = False
    user_text: str = ""
    agent_text: str = ""

    def stages(self) -> dict[str, float]:
        m = self.metrics
        eot = m.get("end_of_turn_delay", 0.0)
        out = {
            "endpointing": eot,
            "stt": max(0.0, m.get("transcription_delay", eot) - eot),
            "tool choice": m.get("tool_choice", 0.0),
            "tools": sum(self.tool_calls),
            "llm": m.get("llm_ttfs", m.get("llm_ttft", 0.0)),
            "tts": m.get("tts_ttfb", 0.0),
        }
        e2e = m.get("e2e_latency")
        answer = m.get("answer_latency", e2e)  # the bar adds up to the answer's own first audio, not a filler's
        out["other"] = max(0.0, answer - sum(out.values())) if answer is not None else 0.0
        m2e = m.get("mouth_to_ear")
        out["playout"] = max(0.0, m2e - e2e) if m2e is not None and e2e is not None else 0.0
        return out


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), in plain Python: the first
    np.percentile call imports numpy.ma, ~25 ms on the GUI's event loop in the middle of a call."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LatencyModel:
    turns: dict[int, TurnLatency] = field(default_factory=dict)
    version: int = 0

    def clear(self) -> None:
        """Empty, for the next conversation (in place: the panels hold this model)."""
        self.turns.clear()
        self.version += 1

    def _turn(self, turn_id: int) -> TurnLatency:
        if turn_id not in self.turns:
            self.turns[turn_id] = TurnLatency(turn_id)
        return self.turns[turn_id]

    def add_metric(self, turn_id: int, name: str, value: float) -> None:
        turn = self._turn(turn_id)
        if name in PER_TOOL_CALL:
            turn.tool_calls.append(value)
        else:
            turn.metrics[name] = value
        self.version += 1

    def complete_turn(
        self, turn_id: int, metrics: dict[str, float | None], user_text: str, agent_text: str, interrupted: bool
    ) -> None:
        turn = self._turn(turn_id)
        # A MetricMeasured that arrived first (e.g. mouth_to_ear from the desktop) is kept.
        turn.metrics.update({k: v for k, v in metrics.items() if v is not None and k not in PER_TOOL_CALL})
        turn.completed = True
        turn.interrupted = interrupted
        turn.user_text = user_text
        turn.agent_text = agent_text
        self.version += 1

    def ordered(self) -> list[TurnLatency]:
        return [self.turns[k] for k in sorted(self.turns)]

    def values(self, name: str) -> list[float]:
        if name in PER_TOOL_CALL:
            return [d for turn in self.ordered() for d in turn.tool_calls]
        return [t.metrics[name] for t in self.ordered() if name in t.metrics]

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """{metric: {"n", "p50", "p95"}} over the conversation, in seconds."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name in SUMMARY_METRICS:
            vals = self.values(name)
            out[name] = {"n": len(vals), "p50": percentile(vals, 50), "p95": percentile(vals, 95)}
        return out
