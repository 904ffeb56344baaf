"""The loop watchdog measures stalls and names the code that caused them."""

from __future__ import annotations

import asyncio
import time

from platform_core.bus import EventBus
from platform_core.events import LoopStall
from platform_core.watchdog import LoopWatchdog


def block_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # what an engine call on the loop thread would do


async def test_a_stall_is_measured_and_its_code_named() -> None:
    bus = EventBus()
    stalls: list[LoopStall] = []
    bus.subscribe(lambda e: stalls.append(e) if isinstance(e, LoopStall) else None)
    dog = LoopWatchdog(bus)
    dog.start()
    try:
        await asyncio.sleep(0.1)
        assert stalls == []  # an idle loop does not stall
        block_the_loop_for(0.2)
        await asyncio.sleep(0.1)
    finally:
        dog.stop()
    assert len(stalls) == 1
    assert 0.15 < stalls[0].duration_s < 0.4
    assert "block_the_loop_for" in stalls[0].where, stalls[0].where
    assert dog.worst_where == stalls[0].where and dog.stalls == 1
