"""Typed events: every event survives a JSON round trip; the metric registry is complete and consistent."""

from __future__ import annotations

import json
import typing

import pytest

from platform_core import events as ev

CID = "conv-1"
# One event of every type, with every field set (also the optional ones), as the platform sends them.
SAMPLES: list[ev.Event] = [
    ev.ConversationStateChanged(conversation_id=CID, agent_id="seed", state="active", reason="answered"),
    ev.AudioLevel(conversation_id=CID, source="caller", rms_dbfs=-31.5, peak=0.25),
    ev.VadStateChanged(conversation_id=CID, speaking=True),
    ev.TurnStarted(conversation_id=CID, turn_id=1, speech_ended_at=12.5),
    ev.TurnHeld(conversation_id=CID, probability=0.12, wait_s=3.0, model_s=0.05, speech_ended_at=11.0),
    ev.TurnCommitted(conversation_id=CID, reason="complete", probability=0.93, held_s=0.9, model_s=0.05),
    ev.TranscriptPartial(conversation_id=CID, turn_id=1, text="what's the"),
    ev.TranscriptFinal(conversation_id=CID, turn_id=1, text="What's the weather?"),
    ev.AgentTextDelta(conversation_id=CID, turn_id=1, text="It is sunny."),
    ev.AgentSpeakingChanged(conversation_id=CID, speaking=False),
    ev.AgentPaused(conversation_id=CID, turn_id=1),
    ev.AgentResumed(conversation_id=CID, turn_id=1, paused_s=0.5, speech_s=0.3, reason="speech ended"),
    ev.AgentInterrupted(conversation_id=CID, turn_id=1, speech_s=0.6, words=2, paused_s=0.55),
    ev.TurnCompleted(
        conversation_id=CID,
        turn_id=1,
        user_text="What's the weather?",
        agent_text="It is sunny.",
        interrupted=False,
        metrics={"e2e_latency": 1.25, "tool_choice": None},
    ),
    ev.MetricMeasured(conversation_id=CID, turn_id=1, name="mouth_to_ear", value=1.5),
    ev.ToolCallUpdated(
        conversation_id=CID,
        turn_id=1,
        call_id="c1",
        name="get_weather",
        arguments={"city": "Paris"},
        status="done",
        result={"sky": "sunny", "temp": [20, 21]},
        error=None,
        duration_s=0.2,
    ),
    ev.AgentConnected(customer_id="acme", connection_id="x1", remote="127.0.0.1:5000"),
    ev.AgentDisconnected(customer_id="acme", connection_id="x1", reason="closed"),
    ev.ToolsRegistered(
        customer_id="acme",
        conversation_id=CID,
        connection_id="x1",
        tools=({"name": "get_weather", "parameters": {"type": "object"}},),
    ),
    ev.EngineProgress(component="llm", message="loading", fraction=0.5, done=False),
    ev.ErrorOccurred(where="llm", message="down", hint="restart it", conversation_id=CID, turn_id=2),
    ev.EngineHealthChanged(engine="llm", state="ok", reason="", restart_s=1.5),
    ev.LLMQueued(conversation_id=CID, turn_id=2, ahead=1, max_wait_s=20.0),
    ev.LoopStall(duration_s=0.3, where="engines.py:12", on_cpu_s=0.1, waiting_for_cpu_s=0.05),
]


def test_every_event_type_has_a_sample() -> None:
    assert {s.kind for s in SAMPLES} == set(ev.EVENT_TYPES)
    assert set(ev.EVENT_TYPES) == {cls.__name__ for cls in typing.get_args(ev.PlatformEvent)}


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_json_round_trip(event: ev.Event) -> None:
    wire = json.loads(json.dumps(event.to_json()))
    assert wire["kind"] == event.kind
    assert ev.from_json(wire) == event


def test_from_json_skips_what_it_cannot_type() -> None:
    assert ev.from_json({"kind": "FromTheFuture", "t": 1}) is None  # a newer version wrote it
    assert ev.from_json({"kind": "TurnStarted", "t": 1, "conversation_id": CID}) is None  # fields missing
    assert ev.from_json({"t": 1}) is None
    newer = ev.from_json(
        {
            "kind": "ToolsRegistered",
            "t": 1,
            "customer_id": "a",
            "conversation_id": "c",
            "connection_id": "x",
            "tools": [{"name": "n"}],
            "new_field": 1,
        }
    )
    assert isinstance(newer, ev.ToolsRegistered) and newer.tools == ({"name": "n"},)


def test_metric_registry() -> None:
    assert typing.get_args(ev.MetricName) == ev.METRIC_NAMES
    assert {"tool_choice", "barge_in_delay", "tool_call", "mouth_to_ear"} <= set(ev.METRIC_NAMES)
    assert all(info.name == name and info.label and info.description for name, info in ev.METRICS.items())
    assert ev.LATENCY_STAGES == ("endpointing", "stt", "tool choice", "tools", "llm", "tts", "other", "playout")
    assert [name for name, info in ev.METRICS.items() if info.per_tool_call] == ["tool_call"]
    assert set(ev.TURN_METRICS) == {
        "end_of_turn_delay",
        "transcription_delay",
        "llm_ttft",
        "llm_ttfs",
        "tts_ttfb",
        "e2e_latency",
        "answer_latency",
    }
