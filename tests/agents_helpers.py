"""Shared test helpers: a gateway on a real socket, agent subprocesses, the conversimple-sdk venv."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from platform_core.bus import EventBus
from platform_core.events import Event
from platform_core.gateway import AgentGateway, serve_gateway
from platform_core.protocol import GATEWAY_PATH

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
KEYS = {"key-acme": "acme", "key-globex": "globex"}

TEST_AGENT = textwrap.dedent('''
    import asyncio
    import os
    from agent_sdk import Agent, tool

    class TestAgent(Agent):
        agent_id = "test"

        @tool
        def get_weather(self, location: str) -> dict:
            """Weather for a location."""
            return {"location": location, "temperature_c": 21, "pid": os.getpid()}

        @tool
        def book_appointment(self, date: str, time: str) -> dict:
            """Book an appointment."""
            return {"confirmed": True, "date": date, "time": time}

        @tool
        def lookup_customer(self, id: str) -> dict:
            """Look a customer up."""
            return {"id": id, "name": "Ada"}

        @tool
        def explode(self, reason: str = "boom") -> dict:
            """Always fails."""
            raise RuntimeError(reason)

        @tool
        async def slow(self, seconds: float) -> dict:
            """Sleeps."""
            await asyncio.sleep(seconds)
            return {"slept": seconds}

        @tool
        async def echo(self, value: str, delay: float = 0.0) -> dict:
            """Echo after a delay."""
            await asyncio.sleep(delay)
            self.state["count"] = self.state.get("count", 0) + 1
            return {"value": value, "conversation": self.conversation_id, "count": self.state["count"]}
''')


@dataclass
class Platform:
    gateway: AgentGateway
    bus: EventBus
    port: int
    events: list[Event]

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{GATEWAY_PATH}"


@contextlib.asynccontextmanager
async def running_gateway(port: int = 0, **options: object) -> AsyncIterator[Platform]:
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    gateway = AgentGateway(bus, dict(KEYS), **options)  # type: ignore[arg-type]
    server = await serve_gateway(gateway, "127.0.0.1", port)
    try:
        yield Platform(gateway, bus, server.sockets[0].getsockname()[1], events)
    finally:
        await gateway.aclose()
        server.close()
        await server.wait_closed()


def write_agent(directory: Path, source: str = TEST_AGENT, name: str = "test_agent.py") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(source)
    return path


def spawn_agent(path: Path, url: str, api_key: str, *extra: str) -> subprocess.Popen[bytes]:
    """`conversimple-agent run PATH` in a real subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "agent_sdk.cli",
            "run",
            str(path),
            "--url",
            url,
            "--api-key",
            api_key,
            "--log-level",
            "WARNING",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, waiting off the loop (the agent's close handshake needs the loop)."""
    if process.poll() is None:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 (any predicate: no event to wait on)
            await asyncio.sleep(0.01)
