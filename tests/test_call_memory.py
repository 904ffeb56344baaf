"""What a finished call leaves behind in the platform: nothing. Real platform (bundled engines), real
WebRTC calls from this process, typed and spoken turns, an agent in this process for some of them.

After the calls the platform holds no Conversation, CallPeer or Call object (gc), no bus subscriber,
no per-conversation gateway state and no per-call task, and each ended call returned glibc's free
pages (malloc_trim). How much that keeps RSS flat is measured by bench/memory.py (docs/engines.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Annotated

import pytest

from agent_sdk import Agent, tool
from platform_core import Platform, PlatformConfig
from platform_core.calls import place_call
from platform_core.heap import _malloc_trim, release_free_memory
from platform_core.pipeline.conversation import Conversation
from platform_core.platform import Call
from platform_core.transport.peer import CallPeer
from tests.agents_helpers import wait_until
from tests.speech import speech_file

KEY = "memory-test-key"


class _WeatherAgent(Agent):
    agent_id = "weather"

    @tool
    def get_weather(self, location: Annotated[str, "City name"]) -> dict[str, object]:
        """Get the current weather for a location."""
        return {"location": location, "temperature_c": 21, "condition": "sunny"}


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


_PER_CALL = ("Conversation.", "Listener.", "Responder.", "Playback.", "CallPeer.", "Platform._forget_when_ended")


def _call_tasks() -> list[str]:
    """The running tasks that belong to a call (by their coroutine), by name."""
    names = [getattr(t.get_coro(), "__qualname__", "") for t in asyncio.all_tasks()]
    return [n for n in names if n.startswith(_PER_CALL)]


def _config() -> PlatformConfig:
    config = PlatformConfig()
    config.server.port = 0
    config.server.api_key = KEY
    return config


def test_releasing_free_memory_is_safe_to_call_any_time() -> None:
    assert release_free_memory() in (True, False)  # glibc: True when it returned pages; elsewhere False
    assert release_free_memory() in (True, False)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_finished_calls_leave_no_objects_subscribers_or_tasks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="platform_core.heap")
    wav = speech_file(tmp_path / "hello.wav", "Hello there.", 16_000)
    platform = Platform(_config())
    await platform.start()
    agent = _WeatherAgent(api_key=KEY, customer_id=platform.customer_for(KEY), platform_url=platform.gateway_url)
    try:
        subscribers = len(platform.bus._subscribers)
        reports = []
        for i in range(3):  # no agent: typed, spoken, typed
            spoken = i % 2 == 1
            reports.append(
                await place_call(
                    platform.url,
                    input_wav=wav if spoken else None,
                    text=None if spoken else "Say hello in three words.",
                    api_key=KEY,
                    quiet_s=0.5,
                )
            )
        await agent.start()
        await wait_until(lambda: any(a.joined for a in platform.agents()), 15, "the agent")
        for text in ("What's the weather in Lisbon?", "Thank you."):
            reports.append(await place_call(platform.url, "weather", text=text, api_key=KEY, quiet_s=0.5))
        assert [r["status"] for r in reports] == ["ok"] * 5
        assert all(r["turns"] and r["turns"][0]["agent_text"] for r in reports)
        await wait_until(lambda: not platform.calls, 15, "every call forgotten")
        await asyncio.sleep(0.5)  # the /call handlers' last steps after the hang-up
        assert _live(Conversation) == 0
        assert _live(CallPeer) == 0
        assert _live(Call) == 0
        assert len(platform.bus._subscribers) == subscribers
        assert platform.gateway._core.conversations == {}
        assert platform.gateway._tools_ready == {} and platform.gateway._waiters == {}
        assert all(not c.told and not c.registered for c in platform.gateway._core.connections.values())
        assert _call_tasks() == []
        # each ended call handed glibc's free pages back (where glibc is the C library)
        trims = [r for r in caplog.records if r.name == "platform_core.heap"]
        assert len(trims) == len(reports) or _malloc_trim() is None
    finally:
        await agent.stop()
        await platform.stop()
