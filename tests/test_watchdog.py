"""The loop watchdog measures stalls and names the code that caused them."""

from __future__ import annotations

import asyncio
import threading
import time

from platform_core.bus import EventBus
from platform_core.events import LoopStall
from platform_core.watchdog import LoopWatchdog, _StackSampler


def block_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)  # what an engine call on the loop thread would do


def watched_loop() -> tuple[LoopWatchdog, list[LoopStall]]:
    """A started watchdog on this loop, and the stalls it publishes."""
    bus = EventBus()
    stalls: list[LoopStall] = []
    bus.subscribe(lambda e: stalls.append(e) if isinstance(e, LoopStall) else None)
    dog = LoopWatchdog(bus)
    dog.start()
    return dog, stalls


async def test_a_stall_is_measured_and_its_code_named() -> None:
    dog, stalls = watched_loop()
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
    # Sleeping is not computing: the kernel's account says the thread was off the CPU.
    assert stalls[0].on_cpu_s is not None and stalls[0].on_cpu_s < 0.05, stalls[0]


def compute_on_the_loop_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_a_stall_says_how_much_of_it_the_loop_spent_computing() -> None:
    dog, stalls = watched_loop()
    try:
        await asyncio.sleep(0.05)
        compute_on_the_loop_for(0.2)
        await asyncio.sleep(0.1)
    finally:
        dog.stop()
    assert len(stalls) == 1, stalls
    stall = stalls[0]
    assert stall.on_cpu_s is not None and stall.waiting_for_cpu_s is not None
    # On a core, or waiting for one (a shared machine may preempt the busy loop): never blocked.
    assert stall.on_cpu_s + stall.waiting_for_cpu_s > 0.15, stall


class FreedWhere:
    """Records the thread that freed it (a Qt object freed off the GUI thread crashed the app)."""

    def __init__(self, threads: list[str]) -> None:
        self.threads = threads

    def __del__(self) -> None:
        self.threads.append(threading.current_thread().name)


def test_the_locals_of_a_sampled_frame_are_freed_on_the_loop_thread() -> None:
    sampler = _StackSampler(threading.get_ident(), late_after_s=0.0)
    freed: list[str] = []

    def busy() -> None:  # the loop thread, stuck in code whose frame the sampler looks at meanwhile
        local = FreedWhere(freed)
        thread = threading.Thread(target=sampler._sample, name="sampler")
        thread.start()
        thread.join()
        del thread
        assert local.threads is freed  # still in use: the sample alone keeps nothing alive

    busy()  # returned while the sample held its frame: the frame now owns `local`
    assert freed == []  # the sampler thread let go of nothing
    assert "busy" in sampler.take()
    assert freed == [threading.current_thread().name]
