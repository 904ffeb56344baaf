"""`conversimple-platform call`: place one call as a real WebRTC client and write a report.

The caller's voice comes from a WAV file played in real time (or a typed turn); the agent's audio
is recorded as received. The call is hung up when the input has been played, every started turn
has completed and the agent has been quiet for a moment; a hard cap turns a stuck call into a
reported timeout instead of a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from platform_core.events import METRIC_NAMES
from platform_core.transport.client import CallClient, CallError
from platform_core.transport.wav_source import SAMPLE_RATE, AudioFileError, SilenceSource, WavSource

EXIT_OK, EXIT_CALL_FAILED, EXIT_BAD_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3
EXTRA_TURN_METRICS = ("tool_choice", "barge_in_delay")  # only in turns that chose a tool / were cut off
SUMMARY_METRICS = (*METRIC_NAMES, "mouth_to_ear", *EXTRA_TURN_METRICS, "tool_call")
_SPEECH_DBFS = -45.0  # a 20 ms frame louder than this counts as speech (input) or voice (agent)
_INPUT_HANGOVER_S = 0.3  # gaps shorter than this do not end a speech segment of the input


@dataclass
class CallTracker:
    """Follows a conversation's events and decides when the call is over (no I/O, no loop)."""

    quiet_s: float = 1.0
    started: dict[int, float] = field(default_factory=dict)  # turn_id -> time.monotonic() seen
    completed: dict[int, dict[str, Any]] = field(default_factory=dict)
    tool_calls: dict[tuple[Any, str], dict[str, Any]] = field(default_factory=dict)  # (turn, call id)
    errors: list[dict[str, Any]] = field(default_factory=list)
    user_text: dict[int, str] = field(default_factory=dict)  # final transcripts, for unfinished turns
    user_partials: dict[int, list[str]] = field(default_factory=dict)  # words shown while the caller spoke
    agent_text: dict[int, str] = field(default_factory=dict)  # clauses handed to TTS so far
    vad_speaking: bool = False
    agent_speaking: bool = False
    last_activity: float = field(default_factory=time.monotonic)

    def on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("kind")
        if kind == "TurnStarted":
            self.started.setdefault(int(event["turn_id"]), now)
        elif kind == "TurnCompleted":
            self.completed[int(event["turn_id"])] = event
        elif kind == "ToolCallUpdated":
            self.tool_calls[(event.get("turn_id"), str(event["call_id"]))] = event
        elif kind == "VadStateChanged":
            self.vad_speaking = bool(event["speaking"])
        elif kind == "AgentSpeakingChanged":
            self.agent_speaking = bool(event["speaking"])
        elif kind == "ErrorOccurred":
            self.errors.append(event)
        elif kind == "TranscriptPartial":
            self.user_partials.setdefault(int(event["turn_id"]), []).append(str(event.get("text", "")))
            return
        elif kind == "TranscriptFinal":
            self.user_text[int(event["turn_id"])] = str(event.get("text", ""))
            return
        elif kind == "AgentTextDelta":
            turn_id = int(event["turn_id"])
            self.agent_text[turn_id] = (self.agent_text.get(turn_id, "") + " " + str(event["text"])).strip()
            return
        else:
            return
        self.last_activity = now

    def pending_turns(self) -> list[int]:
        return sorted(set(self.started) - set(self.completed))

    def settled(self, now: float, *, input_done_for: float | None, input_tail_s: float, need_turn: bool) -> bool:
        """True when hanging up loses nothing: input played out, every turn answered, agent quiet."""
        if input_done_for is None or input_done_for < input_tail_s:
            return False  # the VAD needs its silence window after the last word to commit a turn
        if need_turn and not self.started and not self.errors:
            return False  # a typed turn was sent and not yet acknowledged
        return (
            not self.vad_speaking
            and not self.agent_speaking
            and not self.pending_turns()
            and now - self.last_activity >= self.quiet_s
        )


def speech_segments_end(samples: np.ndarray) -> list[float]:
    """Seconds into `samples` (int16, 48 kHz) at which each speech segment ends (energy based)."""
    n = samples.size // 960
    if n == 0:
        return []
    frames = samples[: n * 960].astype(np.float32).reshape(n, 960) / 32768.0
    dbfs = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(dbfs > _SPEECH_DBFS)
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


class _AgentVoiceClock:
    """Arrival times of the agent's non-silent frames, for the caller-side mouth-to-ear figure."""

    def __init__(self) -> None:
        self.voiced: list[float] = []

    def __call__(self, frame: np.ndarray) -> None:
        rms = float(np.sqrt(np.mean((frame.astype(np.float32) / 32768.0) ** 2)))
        if 20 * np.log10(rms + 1e-9) > _SPEECH_DBFS:
            self.voiced.append(time.monotonic())

    def first_after(self, t: float) -> float | None:
        return next((v for v in self.voiced if v >= t), None)


async def place_call(
    url: str,
    agent_id: str | None = None,
    input_wav: str | Path | None = None,
    text: str | None = None,
    output_wav: str | Path | None = None,
    report_path: str | Path | None = None,
    *,
    api_key: str | None = None,
    max_duration_s: float | None = None,
    quiet_s: float = 1.0,
    input_tail_s: float = 2.0,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Place one call, hang up when it is answered, write the recording and report; returns the report.

    Raises `AudioFileError` (ValueError) for an unusable input file and `CallError` when the call
    cannot be placed; problems during the call are recorded in the report (`status`, `errors`).
    """
    if (input_wav is None) == (text is None):
        raise ValueError("give exactly one of input_wav (a WAV file) or text (a typed turn)")
    source = WavSource(input_wav) if input_wav is not None else SilenceSource()
    tracker = CallTracker(quiet_s=quiet_s)
    voice_clock = _AgentVoiceClock()
    cap = max_duration_s if max_duration_s is not None else source.duration_s + 60.0

    def _on_event(event: dict[str, Any]) -> None:
        tracker.on_event(event, time.monotonic())
        if on_event is not None:
            on_event(event)

    client = CallClient(
        url,
        agent_id=agent_id,
        api_key=api_key,
        source=source,
        on_agent_audio=voice_clock,
        on_event=_on_event,
        feed="no-levels",  # the report does not use audio levels
    )
    started = time.monotonic()
    conversation_id = await client.connect()
    timed_out = False
    try:
        await client.wait_media()
        text_sent_at = None
        if text is not None:
            await client.send_text(text)
            text_sent_at, input_tail_s = time.monotonic(), 0.0
        deadline = time.monotonic() + cap
        while not client.ended:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            input_done_at = text_sent_at if text is not None else source.finished_at
            done_for = None if input_done_at is None else now - input_done_at
            if tracker.settled(now, input_done_for=done_for, input_tail_s=input_tail_s, need_turn=text is not None):
                break
            await asyncio.sleep(0.05)
        ended_by_platform = client.ended
        reason = await client.hangup()
    finally:
        await client.close()

    report = _build_report(
        url=url,
        agent_id=agent_id,
        input_wav=input_wav,
        text=text,
        conversation_id=conversation_id,
        source=source,
        tracker=tracker,
        voice_clock=voice_clock,
        timed_out=timed_out,
        cap=cap,
        ended_by_platform=ended_by_platform,
        reason=reason,
        call_s=time.monotonic() - started,
        agent_audio=client.agent_audio(),
        output_wav=output_wav,
    )
    if output_wav is not None:
        write_wav_atomic(Path(output_wav), client.agent_audio())
    if report_path is not None:
        write_text_atomic(Path(report_path), json.dumps(report, indent=2, default=str) + "\n")
    return report


def _build_report(
    *,
    url: str,
    agent_id: str | None,
    input_wav: str | Path | None,
    text: str | None,
    conversation_id: str,
    source: WavSource | SilenceSource,
    tracker: CallTracker,
    voice_clock: _AgentVoiceClock,
    timed_out: bool,
    cap: float,
    ended_by_platform: bool,
    reason: str,
    call_s: float,
    agent_audio: np.ndarray,
    output_wav: str | Path | None,
) -> dict[str, Any]:
    # Caller-side mouth-to-ear: the input's last speech end before the turn was committed -> the
    # first non-silent agent frame decoded here (includes both WebRTC legs and the jitter buffer).
    speech_ends = (
        [source.started_at + s for s in speech_segments_end(source.samples)]
        if isinstance(source, WavSource) and source.started_at is not None
        else []
    )
    turns: list[dict[str, Any]] = []
    for turn_id in sorted(set(tracker.started) | set(tracker.completed)):
        done = tracker.completed.get(turn_id)
        measured = (done or {}).get("metrics", {})
        metrics: dict[str, float | None] = {name: measured.get(name) for name in METRIC_NAMES}
        metrics.update({name: measured[name] for name in EXTRA_TURN_METRICS if name in measured})
        seen = tracker.started.get(turn_id)
        ends_before = [e for e in speech_ends if seen is not None and e <= seen]
        heard = voice_clock.first_after(seen) if seen is not None else None
        metrics["mouth_to_ear"] = round(heard - ends_before[-1], 4) if ends_before and heard else None
        calls = [
            {k: c.get(k) for k in ("call_id", "name", "arguments", "status", "result", "error", "duration_s")}
            for c in tracker.tool_calls.values()
            if c.get("turn_id") == turn_id
        ]
        turns.append(
            {
                "turn_id": turn_id,
                "user_text": (done or {}).get("user_text", tracker.user_text.get(turn_id, "")),
                "agent_text": (done or {}).get("agent_text", tracker.agent_text.get(turn_id, "")),
                "user_partials": tracker.user_partials.get(turn_id, []),
                "interrupted": bool((done or {}).get("interrupted", False)),
                "completed": done is not None,
                "tool_calls": calls,
                "metrics": metrics,
            }
        )

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
    if not turns and input_wav is not None and not timed_out:
        status = "no_speech" if status == "ok" else status
        notes.append(f"no speech detected in {input_wav}: the platform started no turn")

    summary = {name: percentile_summary([t["metrics"][name] for t in turns if t["metrics"].get(name) is not None])
               for name in SUMMARY_METRICS if name != "tool_call"}
    summary["tool_call"] = percentile_summary(
        [float(c["duration_s"]) for c in tracker.tool_calls.values() if c.get("duration_s") is not None]
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
        "errors": [{k: e.get(k) for k in ("where", "message", "hint")} for e in tracker.errors],
        "call_duration_s": round(call_s, 3),
        "agent_audio_s": round(agent_audio.size / SAMPLE_RATE, 3),
        "output": str(output_wav) if output_wav is not None else None,
        "turns": turns,
        "summary": summary,
    }


def write_wav_atomic(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write int16 mono samples as a WAV file; readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, wave.open(fh, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(samples.astype("<i2").tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def format_report(report: dict[str, Any]) -> str:
    """A short human summary: one line per turn, then p50/p95 per metric."""

    def clip(s: str, n: int) -> str:
        s = " ".join(s.split())
        return s if len(s) <= n else s[: n - 1] + "…"

    def sec(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    turns = report["turns"]
    lines = [
        f"call {report['conversation_id']}: {len(turns)} turn(s), status {report['status']}, "
        f"{report['call_duration_s']:.1f} s ({report['ended_reason']})"
    ]
    if turns:
        lines.append(f"{'#':>3}  {'caller':<30}  {'agent':<38}  {'e2e s':>6}  tools")
        for t in turns:
            tools = ", ".join(f"{c['name']}:{c['status']}" for c in t["tool_calls"]) or "-"
            flag = " (interrupted)" if t["interrupted"] else ""
            lines.append(
                f"{t['turn_id']:>3}  {clip(t['user_text'], 30):<30}  {clip(t['agent_text'] + flag, 38):<38}  "
                f"{sec(t['metrics']['e2e_latency']):>6}  {tools}"
            )
        lines.append(f"{'metric':<20} {'n':>3} {'p50 s':>7} {'p95 s':>7}")
        for name, s in report["summary"].items():
            if s["count"]:
                lines.append(f"{name:<20} {s['count']:>3} {sec(s['p50']):>7} {sec(s['p95']):>7}")
    lines += [f"note: {n}" for n in report["notes"]]
    lines += [f"error ({e['where']}): {e['message']} {e['hint'] or ''}".rstrip() for e in report["errors"]]
    return "\n".join(lines)


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `conversimple-platform call`."""
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the platform (default: %(default)s)")
    parser.add_argument("--agent-id", default=None, help="the agent to call (default: the platform's default)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CONVERSIMPLE_API_KEY"),
        help="the platform's API key (default: $CONVERSIMPLE_API_KEY)",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--input", metavar="IN.wav", help="the caller's voice, played in real time")
    what.add_argument("--text", metavar="TEXT", help="a typed turn instead of a voice")
    parser.add_argument("--output", metavar="OUT.wav", help="record the agent's audio (48 kHz mono)")
    parser.add_argument("--report", metavar="REPORT.json", help="write the call report as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds (default: input length + 60 s)",
    )


def call_main(args: argparse.Namespace) -> int:
    """Run `conversimple-platform call`; returns the process exit code."""
    try:
        report = asyncio.run(
            place_call(
                args.url,
                args.agent_id,
                input_wav=args.input,
                text=args.text,
                output_wav=args.output,
                report_path=args.report,
                api_key=args.api_key,
                max_duration_s=args.timeout,
            )
        )
    except AudioFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CallError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    print(format_report(report))
    if report["status"] == "timeout":
        return EXIT_TIMEOUT
    return EXIT_CALL_FAILED if report["status"] == "ended_by_platform" else EXIT_OK
