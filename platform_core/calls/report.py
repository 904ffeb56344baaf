"""A finished call's report: per turn what was said and measured, the outcome, p50/p95 per metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from platform_core.calls.tracker import SPEECH_DBFS, AgentVoiceClock, CallTracker
from platform_core.events import METRICS, AgentInterrupted, AgentResumed
from platform_core.transport.wav_source import SAMPLE_RATE, SilenceSource, WavSource

_INPUT_HANGOVER_S = 0.3  # gaps shorter than this do not end a speech segment of the input
_TOOL_CALL_FIELDS = ("call_id", "name", "arguments", "status", "result", "error", "duration_s")


def speech_segments_end(samples: np.ndarray) -> list[float]:
    """Seconds into `samples` (int16, 48 kHz) at which each speech segment ends (energy based)."""
    n = samples.size // 960
    if n == 0:
        return []
    frames = samples[: n * 960].astype(np.float32).reshape(n, 960) / 32768.0
    dbfs = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(dbfs > SPEECH_DBFS)
    if loud.size == 0:
        return []
    gap = int(_INPUT_HANGOVER_S / 0.02)
    ends = [int(i) for i in loud[:-1][np.diff(loud) > gap]]
    return [(i + 1) * 0.02 for i in [*ends, int(loud[-1])]]


def percentile_summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None}
    arr = np.asarray(values, dtype=float)
    return {
        "count": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p95": round(float(np.percentile(arr, 95)), 4),
    }


def _turn_metrics(measured: dict[str, float | None], mouth_to_ear: float | None) -> dict[str, float | None]:
    """Every turn metric (None when not measured), plus those the turn had only when it had them."""
    metrics: dict[str, float | None] = {}
    for name, info in METRICS.items():
        if name == "mouth_to_ear":
            metrics[name] = mouth_to_ear
        elif info.every_turn:
            metrics[name] = measured.get(name)
        elif name in measured and not info.per_tool_call:
            metrics[name] = measured[name]
    return metrics


def _turns(tracker: CallTracker, voice_clock: AgentVoiceClock, speech_ends: list[float]) -> list[dict[str, Any]]:
    """One entry per turn seen; `speech_ends`: monotonic times at which the input's speech ended."""
    turns: list[dict[str, Any]] = []
    for turn_id in sorted(set(tracker.started) | set(tracker.completed)):
        done = tracker.completed.get(turn_id)
        # Caller-side mouth-to-ear: the input's last speech end before the turn was committed -> the
        # first non-silent agent frame decoded here (includes both WebRTC legs and the jitter buffer).
        seen = tracker.started.get(turn_id)
        ends_before = [e for e in speech_ends if seen is not None and e <= seen]
        heard = voice_clock.first_after(seen) if seen is not None else None
        mouth_to_ear = round(heard - ends_before[-1], 4) if ends_before and heard else None
        metrics = _turn_metrics(done.metrics if done else {}, mouth_to_ear)
        calls = [
            {k: getattr(c, k) for k in _TOOL_CALL_FIELDS} for c in tracker.tool_calls.values() if c.turn_id == turn_id
        ]
        failures = [e.message for e in tracker.errors if e.turn_id == turn_id]
        turns.append(
            {
                "turn_id": turn_id,
                "user_text": done.user_text if done else tracker.user_text.get(turn_id, ""),
                "agent_text": done.agent_text if done else tracker.agent_text.get(turn_id, ""),
                "user_partials": tracker.user_partials.get(turn_id, []),
                "interrupted": done.interrupted if done else False,
                "completed": done is not None,
                "failed": bool(failures),  # the platform could not answer it (an apology was said instead)
                "error": failures[0] if failures else None,
                "tool_calls": calls,
                "metrics": metrics,
                "llm_head_start_s": done.llm_head_start_s if done else None,
            }
        )
    return turns


def _floor(tracker: CallTracker, started_at: float | None) -> list[dict[str, Any]]:
    """Each turn-taking decision: its kind, the answer's turn, the figures that decided it, and when
    (seconds into the call, when the call's start is known)."""
    out = []
    for event in tracker.floor:
        entry = {k: v for k, v in event.to_json().items() if k not in ("conversation_id", "t")}
        entry["at_s"] = round(event.t - started_at, 3) if started_at is not None else None
        out.append(entry)
    return out


def _unanswered(turns: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """The ids of the turns that failed, and of those completed without a word of answer."""
    failed = [t["turn_id"] for t in turns if t["failed"]]
    silent = [
        t["turn_id"]
        for t in turns
        if t["completed"] and t["user_text"] and not t["agent_text"] and not t["interrupted"] and not t["failed"]
    ]
    return failed, silent


def _status_and_notes(
    tracker: CallTracker,
    turns: list[dict[str, Any]],
    *,
    answered: bool,
    input_wav: str | Path | None,
    timed_out: bool,
    cap: float,
    ended_by_platform: bool,
    reason: str,
) -> tuple[str, list[str]]:
    notes: list[str] = []
    status = "ok"
    if timed_out:
        status = "timeout"
        pending = tracker.pending_turns()
        notes.append(
            f"gave up after {cap:.0f} s (--timeout): "
            + (f"turn(s) {pending} never completed" if pending else "the agent never went quiet")
        )
    elif ended_by_platform:
        status = "ended_by_platform"
        notes.append(f"the platform ended the call before it was answered: {reason}")
    failed, silent = _unanswered(turns)
    if failed:
        status = "turn_failed" if status == "ok" else status
        notes.append(f"turn(s) {failed} failed: " + "; ".join(t["error"] for t in turns if t["failed"]))
    if silent:
        status = "not_answered" if status == "ok" else status
        notes.append(f"turn(s) {silent} got no answer")
    if not answered and input_wav is not None and not timed_out:
        status = "no_speech" if status == "ok" else status
        notes.append(f"no speech detected in {input_wav}: the platform started no turn")
    return status, notes


def _summary(turns: list[dict[str, Any]], tracker: CallTracker) -> dict[str, dict[str, float | int | None]]:
    tool_calls = [float(c.duration_s) for c in tracker.tool_calls.values() if c.duration_s is not None]
    return {
        name: percentile_summary(
            tool_calls
            if info.per_tool_call
            else [t["metrics"][name] for t in turns if t["metrics"].get(name) is not None]
        )
        for name, info in METRICS.items()
    }


def build_report(
    *,
    url: str,
    agent_id: str | None,
    input_wav: str | Path | None,
    text: str | None,
    conversation_id: str,
    source: WavSource | SilenceSource,
    tracker: CallTracker,
    voice_clock: AgentVoiceClock,
    timed_out: bool,
    cap: float,
    ended_by_platform: bool,
    reason: str,
    call_s: float,
    agent_audio: np.ndarray,
    output_wav: str | Path | None,
) -> dict[str, Any]:
    """The JSON-ready report of a finished call (`place_call` writes and returns it)."""
    speech_ends = (
        [source.started_at + s for s in speech_segments_end(source.samples)]
        if isinstance(source, WavSource) and source.started_at is not None
        else []
    )
    turns = _turns(tracker, voice_clock, speech_ends)
    status, notes = _status_and_notes(
        tracker,
        turns,
        answered=bool(turns),
        input_wav=input_wav,
        timed_out=timed_out,
        cap=cap,
        ended_by_platform=ended_by_platform,
        reason=reason,
    )
    return {
        "conversation_id": conversation_id,
        "url": url,
        "agent_id": agent_id,
        "input": str(input_wav) if input_wav is not None else None,
        "text": text,
        "input_duration_s": round(source.duration_s, 3),
        "status": status,
        "ended_reason": reason,
        "timed_out": timed_out,
        "notes": notes,
        "errors": [{"where": e.where, "message": e.message, "hint": e.hint} for e in tracker.errors],
        "call_duration_s": round(call_s, 3),
        "agent_audio_s": round(agent_audio.size / SAMPLE_RATE, 3),
        "output": str(output_wav) if output_wav is not None else None,
        "turns": turns,
        # Speech over the agent: "AgentPaused" then "AgentResumed" (a false interruption) or "AgentInterrupted".
        "turn_taking": _floor(tracker, source.started_at),
        "false_interruptions": sum(isinstance(e, AgentResumed) for e in tracker.floor),
        "interruptions": sum(isinstance(e, AgentInterrupted) for e in tracker.floor),
        "summary": _summary(turns, tracker),
    }
