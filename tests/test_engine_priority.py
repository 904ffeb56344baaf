"""Engine threads run at a lower CPU priority than the event loop's thread (real engines, Linux)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

import pytest

from platform_core.config import EngineConfig
from platform_core.engines.factory import load_engines
from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM
from platform_core.engines.llm.queue import QueuedLLM

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")


def nice_of(tid: int, pid: int | str = "self") -> int:
    """A thread's nice value, from /proc (field 19 of stat)."""
    stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def nice_values(pid: int | str = "self") -> list[int]:
    return [nice_of(int(task.name), pid) for task in Path(f"/proc/{pid}/task").iterdir()]


@pytest.mark.slow
def test_engines_compute_on_nicer_threads_than_the_loop() -> None:
    async def main() -> None:
        engines = await load_engines(EngineConfig(engine_nice=7), lambda *_: None)
        try:
            loop_tid = threading.get_native_id()
            assert nice_of(loop_tid) == 0  # the loop (and a GUI sharing it) keeps its priority
            loop = asyncio.get_running_loop()
            for worker in (engines.stt_worker, engines.tts_worker):
                assert await loop.run_in_executor(worker, lambda: nice_of(threading.get_native_id())) == 7
            # ONNX Runtime's pool threads were created on the TTS worker: they are nicer too.
            assert nice_values().count(7) > 2, nice_values()
            assert isinstance(engines.llm, QueuedLLM)
            llm = engines.llm.inner  # the engine behind the LLM queue
            assert isinstance(llm, EmbeddedLlamaLLM) and llm.server_pid
            server_nice = nice_values(llm.server_pid)
            assert server_nice and set(server_nice) == {7}, server_nice  # every llama.cpp thread
            chunks = [c async for c in engines.synthesize("Still speaking.")]
            assert chunks  # and the engines still work
        finally:
            await engines.aclose()

    asyncio.run(main())


def test_no_lowering_when_turned_off() -> None:
    from platform_core.engines.runner import engine_worker

    worker = engine_worker("t", 0)
    try:
        assert worker.submit(lambda: nice_of(threading.get_native_id())).result() == nice_of(threading.get_native_id())
    finally:
        worker.shutdown()
    assert os.nice(0) == 0
