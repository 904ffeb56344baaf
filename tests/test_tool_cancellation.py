"""Cancellation reaches the agent: a barge-in or a hang-up during a tool call cancels the call in the
agent's own process (its side effect never happens), the platform shows it cancelled, and a result that
still comes is dropped. Real platform process, real engines, real WebRTC calls over /call, agent_sdk
agents in their own processes (the conversimple-sdk side is in test_compat_conversimple.py)."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from app.viewmodels.tool_calls import ToolCallsModel
from bench.harness import RunningPlatform
from platform_core.events import AgentTextDelta, Event, ToolCallUpdated, TurnCompleted, TurnStarted
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import PacedAudioTrack
from tests.agents_helpers import spawn_agent, stop, wait_until, write_agent
from tests.speech import speak

pytestmark = pytest.mark.slow

E = TypeVar("E", bound=Event)
TOOL_S = 3.0  # the tool's work before its side effect; every interruption comes well before it
QUESTION = "What's the weather in Lisbon?"

# The tool notes when it started and when it was cancelled (time.monotonic() is one clock for every
# process of the machine), and writes its side effect only if it runs to the end. Each call's files carry
# its start time: a later turn may call the tool again, and the first call is the interrupted one.
AGENT = textwrap.dedent('''
    import asyncio
    import json
    import time
    from pathlib import Path
    from agent_sdk import Agent, tool

    OUT = Path(__OUT__)

    class CancelAgent(Agent):
        agent_id = "cancel"

        @tool
        __ASYNC__def get_weather(self, location: str) -> dict:
            """Get the current weather for a location."""
            key = f"{time.monotonic():.6f}"
            (OUT / f"started-{key}").write_text(location)
            try:
                __SLEEP__
            except asyncio.CancelledError:
                (OUT / f"cancelled-{key}").write_text(str(time.monotonic()))
                raise
            (OUT / f"side_effect-{key}").write_text(location)
            return {"location": location, "temperature_c": 21}

        def on_tool_cancelled(self, call_id, reason):
            hook = {"reason": reason, "conversation": self.conversation_id, "t": time.monotonic()}
            (OUT / f"hook-{call_id}.json").write_text(json.dumps(hook))
''')


def agent_source(out: Path, *, sync: bool = False, seconds: float = TOOL_S) -> str:
    """The agent, with an async tool (cancellable where it awaits) or a sync one (in a thread)."""
    sleep = f"time.sleep({seconds})" if sync else f"await asyncio.sleep({seconds})"
    return (
        AGENT.replace("__OUT__", repr(str(out)))
        .replace("__ASYNC__", "" if sync else "async ")
        .replace("__SLEEP__", sleep)
    )


@dataclass
class Call:
    """One call with the cancel agent: its client, a live microphone, and every event of its feed."""

    client: CallClient
    mic: PacedAudioTrack
    events: list[Event] = field(default_factory=list)

    def published(self, kind: type[E], **match: object) -> list[E]:
        return [e for e in self.events if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items())]

    async def wait_for(self, kind: type[E], timeout: float = 60.0, **match: object) -> E:
        await wait_until(lambda: self.published(kind, **match), timeout, f"{kind.__name__} {match}")
        return self.published(kind, **match)[0]


@dataclass
class Cancelled:
    """What a call whose tool was interrupted left behind."""

    call_id: str
    updates: list[ToolCallUpdated]  # the call's lifecycle as the call's feed carried it
    error: str | None
    interrupted_at: float  # the caller's barge-in or hang-up sent (time.monotonic())
    platform_cancelled_at: float  # the platform's cancelled event
    agent_cancelled_at: float | None  # the tool's task cancelled in the agent's process
    side_effect: bool
    hook: dict[str, object] | None
    turn: TurnCompleted | None

    @property
    def statuses(self) -> list[str]:
        return [u.status for u in self.updates]


Interrupt = Callable[[Call], Awaitable[None]]


def new_call(platform: RunningPlatform) -> Call:
    """A call to the cancel agent whose feed's events are kept, with a microphone the test speaks into."""
    mic, events = PacedAudioTrack(), list[Event]()
    client = CallClient(platform.url, agent_id="cancel", api_key=platform.api_key, source=mic, on_event=events.append)
    return Call(client, mic, events)


def agent_notes(out: Path, call_id: str) -> tuple[float | None, dict[str, object] | None, bool]:
    """What the agent's process wrote of its first tool call (the interrupted one): when its task was
    cancelled, the on_tool_cancelled hook's record of `call_id`, and whether the side effect happened."""
    first = min(path.name.removeprefix("started-") for path in out.glob("started-*"))
    cancelled = out / f"cancelled-{first}"
    hook = out / f"hook-{call_id}.json"
    return (
        float(cancelled.read_text()) if cancelled.exists() else None,
        json.loads(hook.read_text()) if hook.exists() else None,
        (out / f"side_effect-{first}").exists(),
    )


async def interrupted_tool_call(
    platform: RunningPlatform, out: Path, interrupt: Interrupt, *, sync: bool = False, when: str = "0.5 s"
) -> Cancelled:
    """Ask for the weather with a typed turn, let `interrupt` cut in while the tool runs, then wait past
    the tool's own end (TOOL_S) to see whether its side effect happened or a result came."""
    agent = spawn_agent(write_agent(out, agent_source(out, sync=sync)), platform.gateway_url, platform.api_key)
    call = new_call(platform)
    try:
        await asyncio.sleep(1.0)  # joined: it hears of the call's conversation when it starts
        await call.client.connect()
        await call.client.wait_media()
        await call.client.send_text(QUESTION)
        started = await call.wait_for(ToolCallUpdated, status="started")
        if when == "0.5 s":
            await asyncio.sleep(max(0.0, started.t + 0.5 - time.monotonic()))  # 0.5 s into the call
        else:  # during the filler: it was handed to TTS and the agent is speaking it
            await call.wait_for(AgentTextDelta, turn_id=started.turn_id, filler=True)
            await asyncio.sleep(0.4)
        interrupted_at = time.monotonic()
        await interrupt(call)
        cancelled = await call.wait_for(ToolCallUpdated, 10, call_id=started.call_id, status="cancelled")
        await asyncio.sleep(max(0.0, started.t + TOOL_S + 1.0 - time.monotonic()))  # past the tool's end
        turn = next(iter(call.published(TurnCompleted, turn_id=started.turn_id)), None)
    finally:
        await call.client.hangup()
        await stop(agent)
    agent_at, hook, side_effect = agent_notes(out, started.call_id)
    return Cancelled(
        call_id=started.call_id,
        updates=call.published(ToolCallUpdated, call_id=started.call_id),
        error=cancelled.error,
        interrupted_at=interrupted_at,
        platform_cancelled_at=cancelled.t,
        agent_cancelled_at=agent_at,
        side_effect=side_effect,
        hook=hook,
        turn=turn,
    )


def report_latency(what: str, result: Cancelled) -> None:
    assert result.agent_cancelled_at is not None
    to_agent = result.agent_cancelled_at - result.interrupted_at
    platform_to_agent = result.agent_cancelled_at - result.platform_cancelled_at
    print(
        f"\n{what}: interruption sent -> tool cancelled in the agent {to_agent * 1000:.1f} ms "
        f"(platform's cancelled event -> agent {platform_to_agent * 1000:.1f} ms)"
    )


async def barge_in_typed(call: Call) -> None:
    await call.client.send_text("Never mind.")


async def hang_up(call: Call) -> None:
    await call.client.hangup()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("when", ["0.5 s", "filler"], ids=["barge-in at 0.5 s", "barge-in during the filler"])
async def test_a_barge_in_cancels_the_tool_in_the_agent(
    platform_server: RunningPlatform, tmp_path: Path, when: str
) -> None:
    result = await interrupted_tool_call(platform_server, tmp_path / "agent", barge_in_typed, when=when)
    report_latency(f"typed barge-in ({when})", result)
    assert result.statuses == ["started", "cancelled"], "never shown done"
    assert "interrupted" in (result.error or ""), result.error
    panel = ToolCallsModel()  # what the app's tool-call panel shows of the same events
    for update in result.updates:
        panel.update(update)
    row = panel.rows[result.call_id]
    assert row.status == "cancelled" and row.finished and row.outcome_text() == result.error
    assert not result.side_effect, "the tool's task was cancelled in the agent's process before its side effect"
    assert result.hook is not None and "interrupted" in str(result.hook["reason"])
    assert result.turn is not None and result.turn.interrupted
    assert result.agent_cancelled_at is not None and result.agent_cancelled_at - result.interrupted_at < 1.0


@pytest.mark.timeout(240)
async def test_a_hang_up_cancels_the_tool_in_the_agent(platform_server: RunningPlatform, tmp_path: Path) -> None:
    result = await interrupted_tool_call(platform_server, tmp_path / "agent", hang_up)
    report_latency("hang-up", result)
    assert result.statuses == ["started", "cancelled"]
    assert not result.side_effect and result.hook is not None
    assert result.agent_cancelled_at is not None and result.agent_cancelled_at - result.interrupted_at < 1.0


@pytest.mark.timeout(240)
async def test_a_sync_tool_runs_on_in_its_thread_but_its_result_is_dropped(
    platform_server: RunningPlatform, tmp_path: Path
) -> None:
    """A thread cannot be stopped (docs/agent-protocol.md): the side effect happens, but the call stays
    cancelled: the agent sends no answer and the platform never shows it done."""
    result = await interrupted_tool_call(platform_server, tmp_path / "agent", barge_in_typed, sync=True)
    assert result.statuses == ["started", "cancelled"]
    assert result.side_effect, "the thread ran to its end"
    assert result.hook is not None


@pytest.mark.timeout(240)
async def test_a_spoken_barge_in_cancels_the_tool_in_the_agent(
    platform_server: RunningPlatform, tmp_path: Path
) -> None:
    """The caller's voice over WebRTC: the question, then speech over the tool's wait."""
    out = tmp_path / "agent"
    agent = spawn_agent(write_agent(out, agent_source(out)), platform_server.gateway_url, platform_server.api_key)
    question, stop_words = speak(QUESTION), speak("Stop. Forget about the weather.")
    call = new_call(platform_server)
    mic = call.mic
    try:
        await asyncio.sleep(1.0)
        await call.client.connect()
        await call.client.wait_media()
        mic.say(question)
        started = await call.wait_for(ToolCallUpdated, status="started")
        await asyncio.sleep(max(0.0, started.t + 0.5 - time.monotonic()))
        spoken_at = time.monotonic()
        mic.say(stop_words)
        cancelled = await call.wait_for(ToolCallUpdated, 10, call_id=started.call_id, status="cancelled")
        second = await call.wait_for(TurnStarted, 30, turn_id=started.turn_id + 1)  # type: ignore[operator]
        await asyncio.sleep(max(0.0, started.t + TOOL_S + 1.0 - time.monotonic()))
        statuses = [e.status for e in call.published(ToolCallUpdated, call_id=started.call_id)]
    finally:
        await call.client.hangup()
        await stop(agent)
    agent_at, _, side_effect = agent_notes(out, started.call_id)
    assert agent_at is not None, "the tool's task was cancelled in the agent"
    print(
        f"\nspoken barge-in: speech sent -> tool cancelled in the agent {(agent_at - spoken_at) * 1000:.0f} ms "
        f"(platform's cancelled event -> agent {(agent_at - cancelled.t) * 1000:.1f} ms)"
    )
    assert statuses == ["started", "cancelled"] and second.t >= cancelled.t
    assert not side_effect
