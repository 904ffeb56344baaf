"""Agents written with the public conversimple-sdk 0.2.4, in its own virtual environment, against our gateway.

The venv is created on first use (user cache dir, or $CONVERSIMPLE_COMPAT_VENV) and reused afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.harness import compat_venv
from platform_core.events import AgentDisconnected, ErrorOccurred, ToolCallUpdated
from tests.agents_helpers import Platform, running_gateway, stop, wait_until

AGENT = textwrap.dedent("""
    import asyncio
    import os
    from conversimple import ConversimpleAgent, tool, tool_async

    class SeedAgent(ConversimpleAgent):
        agent_id = "seed"

        @tool("Get the current weather for a location")
        def get_weather(self, location: str) -> dict:
            return {"location": location, "temperature_c": 21, "pid": os.getpid()}

        @tool("Book an appointment")
        def book_appointment(self, date: str, time: str) -> dict:
            return {"confirmed": True, "date": date, "time": time}

        @tool("Look a customer up")
        def lookup_customer(self, id: str) -> dict:
            raise LookupError(f"no customer with id {id}")

        @tool_async("Sleep, then answer")
        async def slow(self, seconds: float) -> dict:
            await asyncio.sleep(seconds)
            return {"slept": seconds}
""")

STANDALONE = textwrap.dedent("""
    import asyncio, sys
    sys.path.insert(0, sys.argv[3])
    from seed_agent import SeedAgent

    async def main():
        agent = SeedAgent(api_key=sys.argv[2], platform_url=sys.argv[1], max_reconnect_attempts=20)
        try:
            await agent.start()
        except Exception as exc:
            print("START FAILED:", exc, "breaker_open=%s" % agent.connection.circuit_breaker_open, flush=True)
            return
        print("STARTED", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    try:
        return compat_venv()
    except subprocess.CalledProcessError as exc:  # no registry: say so rather than fail obscurely
        pytest.skip(f"could not install conversimple-sdk==0.2.4 into a venv: {exc.stderr!r}")


@pytest.fixture
def agent_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "seed_agent.py").write_text(AGENT)
    yield tmp_path


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CONVERSIMPLE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@contextlib.asynccontextmanager
async def standalone_agent(platform: Platform, sdk_python: Path, agent_dir: Path) -> AsyncIterator[Path]:
    """conversimple-sdk's standalone agent, joined and serving conversation c1; yields its log file."""
    (agent_dir / "run.py").write_text(STANDALONE)
    log = agent_dir / "standalone.log"
    agent = _spawn(
        [str(sdk_python / "bin" / "python"), str(agent_dir / "run.py"), platform.url(), "key-acme", str(agent_dir)],
        log,
    )
    try:
        await wait_until(lambda: any(a.joined for a in platform.gateway.agents()), 20)
        await platform.gateway.conversation_started("c1", None, "acme")
        assert await platform.gateway.wait_for_tools("c1", 10), log.read_text()
        yield log
    finally:
        await stop(agent)


async def test_conversimple_dispatcher_serves_a_platform_conversation(sdk_python: Path, agent_dir: Path) -> None:
    async with running_gateway() as platform:
        log = agent_dir / "dispatcher.log"
        dispatcher = _spawn(
            [
                str(sdk_python / "bin" / "conversimple-dispatcher"),
                "--api-key",
                "key-acme",
                "--platform-url",
                platform.url(),
                "--search-path",
                str(agent_dir),
            ],
            log,
        )
        try:
            await wait_until(lambda: any(a.joined for a in platform.gateway.agents()), 20)
            await platform.gateway.conversation_started("c1", "seed", "acme")
            tools = await platform.gateway.wait_for_tools("c1", 15)
            assert {t.name for t in tools} == {"get_weather", "book_appointment", "lookup_customer", "slow"}, (
                log.read_text()
            )
            weather = await platform.gateway.call_tool("c1", "get_weather", {"location": "Porto"})
            assert weather.status == "done" and weather.result["location"] == "Porto"
            assert weather.result["pid"] == dispatcher.pid  # their dispatcher's process ran their tool
            calls = [platform.gateway.call_tool("c1", "slow", {"seconds": d}) for d in (0.3, 0.1, 0.2)]
            results = await asyncio.gather(*calls)  # answered out of order, each to its own call
            assert [r.result["slept"] for r in results] == [0.3, 0.1, 0.2]
            failed = await platform.gateway.call_tool("c1", "lookup_customer", {"id": "9"})
            assert failed.status == "error" and "no customer with id 9" in (failed.error or "")
            # the dispatched instance has its own connection; ending the conversation stops it
            instance = next(a for a in platform.gateway.agents() if "c1" in a.tools)
            await platform.gateway.conversation_ended("c1")
            await wait_until(
                lambda: any(
                    isinstance(e, AgentDisconnected) and e.connection_id == instance.connection_id
                    for e in platform.events
                ),
                10,
            )
        finally:
            await stop(dispatcher)


async def test_conversimple_standalone_agent_and_reconnect(sdk_python: Path, agent_dir: Path) -> None:
    async with running_gateway() as platform, standalone_agent(platform, sdk_python, agent_dir):
        first = await platform.gateway.call_tool("c1", "book_appointment", {"date": "2026-12-01", "time": "9:00"})
        assert first.status == "done" and first.result["confirmed"] is True
        [before] = platform.gateway.agents()
        await platform.gateway.disconnect(before.connection_id, "service restart")
        # their SDK reconnects (after >= 1 s) and registers the conversation's tools again
        await wait_until(
            lambda: [
                a for a in platform.gateway.agents() if a.connection_id != before.connection_id and "c1" in a.tools
            ],
            15,
        )
        again = await platform.gateway.call_tool("c1", "get_weather", {"location": "Faro"})
        assert again.status == "done" and again.result["location"] == "Faro"


async def test_conversimple_agent_ignores_a_cancel_and_serves_the_next_call(sdk_python: Path, agent_dir: Path) -> None:
    """`tool_call_cancelled` is an event conversimple-sdk 0.2.4 does not know: its agent logs it as
    unhandled and goes on (its handler table has no entry and no error is sent back). Its tool runs to
    the end; the answer that comes is late and dropped, so the call stays cancelled."""
    async with running_gateway() as platform, standalone_agent(platform, sdk_python, agent_dir) as log:
        slow = asyncio.create_task(platform.gateway.call_tool("c1", "slow", {"seconds": 1.0}, turn_id=1))
        await wait_until(lambda: any(a.pending_calls for a in platform.gateway.agents()), 5)
        platform.gateway.cancel_tool_calls("c1", turn_id=1, reason="interrupted: caller spoke")
        cancelled = await asyncio.wait_for(slow, 1)
        assert cancelled.status == "cancelled"
        weather = await platform.gateway.call_tool("c1", "get_weather", {"location": "Faro"}, turn_id=2)
        assert weather.status == "done" and weather.result["location"] == "Faro", log.read_text()
        await asyncio.sleep(1.5)  # the slow tool's own answer has come by now, and was dropped
        statuses = [e.status for e in platform.events if isinstance(e, ToolCallUpdated) and e.name == "slow"]
        assert statuses == ["started", "cancelled"]
        assert not [e for e in platform.events if isinstance(e, ErrorOccurred)], "no protocol error either way"
        assert [a.connection_id for a in platform.gateway.agents()], "still connected"
    assert "Unhandled platform message: tool_call_cancelled" in log.read_text()


async def test_conversimple_wrong_key_opens_the_circuit_breaker(sdk_python: Path, agent_dir: Path) -> None:
    (agent_dir / "run.py").write_text(STANDALONE)
    async with running_gateway() as platform:
        log = agent_dir / "refused.log"
        agent = _spawn(
            [str(sdk_python / "bin" / "python"), str(agent_dir / "run.py"), platform.url(), "bad-key", str(agent_dir)],
            log,
        )
        try:
            await asyncio.to_thread(agent.wait, 20)
            text = log.read_text()
            assert "START FAILED" in text and "breaker_open=True" in text, text
            assert platform.gateway.agents() == []
        finally:
            await stop(agent)
