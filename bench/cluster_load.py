"""Held conversations for bench/cluster_scale.py: real WebRTC callers (`CallClient`) that stay on the line and
type a turn every few seconds ("echo wN": the stand-in LLM calls the agent's echo tool for it).

Per caller: its set-up time (connect + offer/answer, then the first audio frame), the agent audio frames
it received (20 ms each: how much of the media the worker delivered), and per typed turn whether it was
answered and the tool call's round trip as the worker measured it (`ToolCallUpdated.duration_s`: the
worker's request over NATS to the gateway node, the node's call to the agent, and back).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from platform_core.events import Event, ToolCallUpdated, TurnCompleted
from platform_core.transport.client import CallClient, CallError

FRAME_S = 0.02


@dataclass
class Caller:
    """One held call and what it measured."""

    client: CallClient
    answer_s: float = 0.0  # connect(): signalling, the offer relayed, the answer applied
    media_s: float = 0.0  # ... and the first audio frame from the worker
    frames: int = 0
    sent: int = 0
    completed: int = 0
    tool_s: list[float] = field(default_factory=list)
    tool_failures: list[str] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        if isinstance(event, TurnCompleted):
            self.completed += 1
        elif isinstance(event, ToolCallUpdated) and event.status != "started":
            if event.status == "done" and event.duration_s is not None:
                self.tool_s.append(event.duration_s)
            else:
                self.tool_failures.append(f"{event.status}: {event.error}")

    def on_audio(self, frame: np.ndarray) -> None:
        self.frames += 1


async def place(url: str, api_key: str, *, timeout_s: float = 30.0) -> Caller:
    """A call to the echo agent at `url` (a front door or a worker), held; raises CallError if refused."""
    holder: list[Caller] = []
    client = CallClient(
        url,
        agent_id="echo",
        api_key=api_key,
        on_event=lambda e: holder[0].on_event(e),
        on_agent_audio=lambda f: holder[0].on_audio(f),
        feed="no-levels",
    )
    caller = Caller(client)
    holder.append(caller)
    started = time.perf_counter()
    async with asyncio.timeout(timeout_s):
        await client.connect()
        caller.answer_s = time.perf_counter() - started
        await client.wait_media(timeout_s)
    caller.media_s = time.perf_counter() - started
    return caller


async def place_many(url: str, api_key: str, n: int, *, at_once: int = 8) -> tuple[list[Caller], list[str]]:
    """`n` held calls, `at_once` being set up at any moment; the callers, and why the others failed."""
    gate = asyncio.Semaphore(at_once)

    async def one() -> Caller:
        async with gate:
            return await place(url, api_key)

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    callers = [r for r in results if isinstance(r, Caller)]
    failures = [_why(r) for r in results if isinstance(r, BaseException)]
    return callers, failures


def _why(exc: BaseException) -> str:
    if isinstance(exc, CallError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


async def converse(callers: list[Caller], window_s: float, turn_every_s: float) -> dict[str, Any]:
    """Each caller types a turn every `turn_every_s` (staggered) for `window_s`; then waits up to 5 s for the
    last answers. Returns the window's figures (frames delivered, turns answered, tool round trips)."""
    frames_before = [c.frames for c in callers]
    tools_before = [len(c.tool_s) for c in callers]
    sent_before = [c.sent for c in callers]
    done_before = [c.completed for c in callers]
    started = time.monotonic()

    async def talk(i: int, caller: Caller) -> None:
        await asyncio.sleep(turn_every_s * i / max(1, len(callers)))
        while time.monotonic() - started < window_s - 0.5 and not caller.client.ended:
            try:
                await caller.client.send_text(f"echo w{caller.sent}")
            except CallError:
                return
            caller.sent += 1
            await asyncio.sleep(turn_every_s)

    await asyncio.gather(*(talk(i, c) for i, c in enumerate(callers)))
    await asyncio.sleep(max(0.0, window_s - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(  # noqa: ASYNC110 (counts fed by each call's event feed)
        c.completed - d < c.sent - s for c, d, s in zip(callers, done_before, sent_before, strict=True)
    ):
        await asyncio.sleep(0.1)
    expected = elapsed / FRAME_S
    delivered = [(c.frames - b) / expected for c, b in zip(callers, frames_before, strict=True)]
    round_trips = [s for c, b in zip(callers, tools_before, strict=True) for s in c.tool_s[b:]]
    return {
        "window_s": round(elapsed, 2),
        "turns_sent": sum(c.sent - s for c, s in zip(callers, sent_before, strict=True)),
        "turns_answered": sum(c.completed - d for c, d in zip(callers, done_before, strict=True)),
        "tool_calls_done": len(round_trips),
        "tool_failures": sum(len(c.tool_failures) for c in callers),
        "tool_round_trip_ms": percentiles([s * 1000 for s in round_trips]),
        "media_delivered_min": round(min(delivered), 3) if delivered else None,
        "media_delivered_median": round(float(np.median(delivered)), 3) if delivered else None,
        "calls_ended": sum(1 for c in callers if c.client.ended),
    }


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """count, p50, p99 and max of `values` (None when there are none)."""
    if not values:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    arr = np.asarray(values, dtype=float)
    return {
        "count": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p99": round(float(np.percentile(arr, 99)), 3),
        "max": round(float(arr.max()), 3),
    }


async def hang_up_all(callers: list[Caller]) -> None:
    await asyncio.gather(*(c.client.hangup(timeout=5.0) for c in callers), return_exceptions=True)
