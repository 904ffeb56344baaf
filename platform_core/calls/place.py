"""Placing one call as a real WebRTC client of a running platform.

The caller's voice comes from a WAV file played in real time (or a typed turn); the agent's audio
is recorded as received. The call is hung up when the input has been played, every started turn
has completed and the agent has been quiet for a moment; a hard cap turns a stuck call into a
reported timeout instead of a hang.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platform_core.audio import Int16Array
from platform_core.audio_files import write_wav
from platform_core.calls.report import build_report
from platform_core.calls.tracker import AgentVoiceClock, CallTracker
from platform_core.events import Event
from platform_core.files import write_text_atomic
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import SilenceSource, WavSource


async def _wait_until_answered(
    client: CallClient,
    tracker: CallTracker,
    source: WavSource | SilenceSource,
    text: str | None,
    *,
    cap: float,
    input_tail_s: float,
) -> bool:
    """Play the input (or send the typed turn) and wait until the call is settled, the platform
    ended it, or `cap` seconds passed; True when it timed out."""
    text_sent_at = None
    if text is not None:
        await client.send_text(text)
        text_sent_at, input_tail_s = time.monotonic(), 0.0
    deadline = time.monotonic() + cap
    while not client.ended:
        now = time.monotonic()
        if now >= deadline:
            return True
        input_done_at = text_sent_at if text is not None else source.finished_at
        done_for = None if input_done_at is None else now - input_done_at
        if tracker.settled(now, input_done_for=done_for, input_tail_s=input_tail_s, need_turn=text is not None):
            return False
        await asyncio.sleep(0.05)
    return False


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
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Place one call, hang up when it is answered, write the recording and report; returns the report.

    Raises `AudioFileError` (ValueError) for an unusable input file and `CallError` when the call
    cannot be placed; problems during the call are recorded in the report (`status`, `errors`).
    """
    if (input_wav is None) == (text is None):
        raise ValueError("give exactly one of input_wav (a WAV file) or text (a typed turn)")
    source = WavSource(input_wav) if input_wav is not None else SilenceSource()
    tracker = CallTracker(quiet_s=quiet_s)
    voice_clock = AgentVoiceClock()
    cap = max_duration_s if max_duration_s is not None else source.duration_s + 60.0

    client = _tracked_client(url, agent_id, api_key, source, voice_clock, tracker, on_event)
    started = time.monotonic()
    conversation_id = await client.connect()
    try:
        await client.wait_media()
        timed_out = await _wait_until_answered(client, tracker, source, text, cap=cap, input_tail_s=input_tail_s)
        ended_by_platform = client.ended
        reason = await client.hangup()
    finally:
        await client.close()

    report = build_report(
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
    if client.worker is not None:  # placed by a cluster's front door: the media worker that served it
        report["worker"] = client.worker
    _save(report, client.agent_audio(), output_wav, report_path)
    return report


def _tracked_client(
    url: str,
    agent_id: str | None,
    api_key: str | None,
    source: WavSource | SilenceSource,
    voice_clock: AgentVoiceClock,
    tracker: CallTracker,
    on_event: Callable[[Event], None] | None,
) -> CallClient:
    """A client whose events feed the tracker (then `on_event`); the report needs no audio levels."""

    def _on_event(event: Event) -> None:
        tracker.on_event(event, time.monotonic())
        if on_event is not None:
            on_event(event)

    return CallClient(
        url,
        agent_id=agent_id,
        api_key=api_key,
        source=source,
        on_agent_audio=voice_clock,
        on_event=_on_event,
        feed="no-levels",
    )


def _save(
    report: dict[str, Any], agent_audio: Int16Array, output_wav: str | Path | None, report_path: str | Path | None
) -> None:
    """The agent's voice and the report, written atomically where asked."""
    if output_wav is not None:
        write_wav(output_wav, agent_audio)
    if report_path is not None:
        write_text_atomic(report_path, json.dumps(report, indent=2, default=str) + "\n")
