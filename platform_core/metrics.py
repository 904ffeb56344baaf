"""The metric registry: every latency metric (seconds) the platform, the app, the call report and the
bench publish, named once, with what it measures and which stage of the latency bar it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        MetricInfo(
            "llm_ttft",
            "LLM first token",
            "the reply's request to the LLM (an adopted draft: the end of tool choice) -> its first token",
        ),
        MetricInfo(
            "llm_ttfs",
            "LLM first sentence",
            "the reply's request to the LLM (an adopted draft: the end of tool choice) -> its first sentence for TTS",
            stage="llm",
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
            "barge_in_delay",
            "barge-in",
            "the caller's speech arrived -> the agent's audio stopped (it pauses at once; measured on the"
            " turns whose pause became an interruption)",
            every_turn=False,
        ),
    )
}
METRIC_NAMES: tuple[MetricName, ...] = tuple(METRICS)
# The platform measures these on every answered turn (the others only when they happen, or on the caller side).
TURN_METRICS: tuple[MetricName, ...] = tuple(n for n, m in METRICS.items() if m.every_turn)
LATENCY_STAGES: tuple[str, ...] = tuple(m.stage for m in METRICS.values() if m.stage)
