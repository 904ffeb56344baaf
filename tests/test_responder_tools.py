"""Function calling in the voice loop: the LLM's tool calls run in a real agent process over the gateway."""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bench.harness import RunningPlatform, start_platform, stop_platform
from platform_core.calls import place_call
from tests.agents_helpers import spawn_agent, stop, write_agent
from tests.speech import speech_wav, words

pytestmark = pytest.mark.slow

# Each failure mode hides behind the tool the small model picks most reliably (weather), so the tests
# exercise the gateway's handling, not the model's judgement.
AGENT_HEADER = """
import asyncio
import os
import signal

from agent_sdk import Agent, tool


class ToolAgent(Agent):
    agent_id = "tools"
"""
WEATHER_TOOLS = {
    "works": """
    @tool
    def get_weather(self, location: str) -> dict:
        \"\"\"Get the current weather for a location.\"\"\"
        return {"location": location, "temperature_c": 17, "condition": "foggy", "agent_pid": os.getpid()}
""",
    "raises": """
    @tool
    def get_weather(self, location: str) -> dict:
        \"\"\"Get the current weather for a location.\"\"\"
        raise RuntimeError(f"the weather service is down for {location}")
""",
    "hangs": """
    @tool(timeout=1.5)
    async def get_weather(self, location: str) -> dict:
        \"\"\"Get the current weather for a location.\"\"\"
        await asyncio.sleep(10)
        return {"location": location}
""",
    "dies": """
    @tool
    def get_weather(self, location: str) -> dict:
        \"\"\"Get the current weather for a location.\"\"\"
        os.kill(os.getpid(), signal.SIGKILL)  # the agent process dies in the middle of the call
        return {}
""",
}


# Weather the model could only have invented: the failing tools return none.
INVENTED = {"degrees", "sunny", "cloudy", "rain", "rainy", "foggy", "fog", "snow", "windy", "celsius", "fahrenheit"}
ADMITS = ("sorry", "couldn't", "could not", "unable", "not able", "can't", "cannot", "don't have", "do not have")


def assert_admits_the_failure(text: str) -> None:
    """The answer says it could not get the weather, and gives none (no figure, no condition)."""
    assert not any(ch.isdigit() for ch in text) and not words(text) & INVENTED, f"invented data: {text!r}"
    assert any(phrase in text.lower() for phrase in ADMITS), f"does not say it failed: {text!r}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("tools-platform"), "-v")  # -v: llama.cpp's timings
    yield running
    stop_platform(running.process)


@pytest_asyncio.fixture
async def agent(request: pytest.FixtureRequest, platform: RunningPlatform, tmp_path: Path) -> AsyncIterator[int]:
    """The agent process; its weather tool behaves as the test's `behaviour` marker says (default: works)."""
    marker = request.node.get_closest_marker("behaviour")
    source = AGENT_HEADER + WEATHER_TOOLS[marker.args[0] if marker else "works"]
    process = spawn_agent(write_agent(tmp_path, source), platform.gateway_url, platform.api_key)
    await asyncio.sleep(2.0)  # connected and joined (the dispatcher waits for conversation_ready)
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    yield process.pid
    await stop(process)


async def call(
    platform: RunningPlatform, tmp_path: Path, *, text: str | None = None, spoken: str | None = None
) -> dict:
    wav = speech_wav(tmp_path, spoken) if spoken else None
    report = await place_call(platform.url, "tools", input_wav=wav, text=text, api_key=platform.api_key)
    assert len(report["turns"]) == 1, report
    return report["turns"][0]  # type: ignore[no-any-return]


async def test_spoken_weather_question_runs_the_agents_tool(
    platform: RunningPlatform, agent: int, tmp_path: Path
) -> None:
    turn = await call(platform, tmp_path, spoken="What's the weather in San Francisco?")
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    weather = turn["tool_calls"][0]
    assert weather["arguments"] == {"location": "San Francisco"}
    assert weather["status"] == "done"
    assert weather["result"]["agent_pid"] == agent  # it ran in the agent's own process
    assert weather["duration_s"] < 5
    # The spoken answer uses the tool's result.
    assert words(turn["agent_text"]) & {"17", "seventeen", "foggy", "fog"}, turn["agent_text"]


async def test_a_call_without_an_agent_id_finds_its_tool_prompt_already_processed(
    platform: RunningPlatform, agent: int, tmp_path: Path
) -> None:
    # The customer's agents serve a call placed without an agent id too (the app's default), so the
    # platform processes the tool-choice prompt while the caller is still speaking, not after.
    wav = speech_wav(tmp_path, "What's the weather in Paris?", lead_s=1.5)
    log_start = platform.log_path.stat().st_size
    report = await place_call(platform.url, None, input_wav=wav, api_key=platform.api_key)
    [turn] = report["turns"]
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    with platform.log_path.open() as log:
        log.seek(log_start)
        requests = [line for line in log if "llm: prompt" in line]
    # llama.cpp's account of each request: "llm: prompt N tokens in T ms (C cached), G tokens generated"
    cached = [int(line.split("(")[1].split()[0]) for line in requests if " 1 tokens generated" not in line]
    assert cached and cached[0] > 150, requests  # the turn's tool choice found ~200 tokens processed


async def test_a_request_that_needs_no_tool_calls_none(platform: RunningPlatform, agent: int, tmp_path: Path) -> None:
    turn = await call(platform, tmp_path, text="What is two plus two?")
    assert turn["tool_calls"] == []
    assert turn["agent_text"]


@pytest.mark.behaviour("raises")
async def test_a_tool_that_raises_is_reported_and_the_agent_still_answers(
    platform: RunningPlatform, agent: int, tmp_path: Path
) -> None:
    turn = await call(platform, tmp_path, text="What's the weather in San Francisco?")
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    failed = turn["tool_calls"][0]
    assert failed["status"] == "error" and "weather service is down" in failed["error"]
    assert turn["agent_text"] and not turn["interrupted"]
    assert_admits_the_failure(turn["agent_text"])


@pytest.mark.behaviour("hangs")
async def test_a_tool_that_times_out_gets_a_filler_then_an_answer(
    platform: RunningPlatform, agent: int, tmp_path: Path
) -> None:
    turn = await call(platform, tmp_path, text="What's the weather in San Francisco?")
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    slow = turn["tool_calls"][0]
    assert slow["status"] == "timeout"
    assert 1.4 < slow["duration_s"] < 4
    assert "one moment" in turn["agent_text"].lower()  # said while the tool ran past a second
    assert len(turn["agent_text"]) > len("One moment, please.")
    assert_admits_the_failure(turn["agent_text"].replace("One moment, please.", ""))


@pytest.mark.behaviour("dies")
async def test_an_agent_killed_mid_call_turns_into_an_error_at_once(
    platform: RunningPlatform, agent: int, tmp_path: Path
) -> None:
    turn = await call(platform, tmp_path, text="What's the weather in San Francisco?")
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    killed = turn["tool_calls"][0]
    assert killed["status"] == "error"
    assert killed["duration_s"] < 3, "the gateway must notice the dead agent, not wait for the timeout"
    assert turn["agent_text"]
    assert_admits_the_failure(turn["agent_text"])


# --- agents written with the public conversimple-sdk, unchanged ----------------------------------------

CONVERSIMPLE_AGENT = textwrap.dedent("""
    import os
    from conversimple import ConversimpleAgent, tool


    class WeatherAgent(ConversimpleAgent):
        agent_id = "tools"

        @tool("Get the current weather for a location")
        def get_weather(self, location: str) -> dict:
            return {"location": location, "temperature_c": 17, "condition": "foggy", "agent_pid": os.getpid()}
""")


async def test_conversimple_sdk_dispatcher_serves_a_spoken_request(platform: RunningPlatform, tmp_path: Path) -> None:
    from bench.harness import compat_venv

    sdk = compat_venv()
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "weather_agent.py").write_text(CONVERSIMPLE_AGENT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    dispatcher = await asyncio.to_thread(
        subprocess.Popen,
        [
            str(sdk / "bin" / "conversimple-dispatcher"),
            "--api-key",
            platform.api_key,
            "--platform-url",
            platform.gateway_url,
            "--search-path",
            str(agents),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(3.0)
        turn = await call(platform, tmp_path, spoken="What's the weather in San Francisco?")
        assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
        weather = turn["tool_calls"][0]
        assert weather["status"] == "done" and weather["arguments"] == {"location": "San Francisco"}
        assert weather["result"]["agent_pid"] == dispatcher.pid  # their tool ran in their process
        assert words(turn["agent_text"]) & {"17", "seventeen", "foggy", "fog"}, turn["agent_text"]
    finally:
        await stop(dispatcher)


# --- several tools in one turn: a chain, bounded by the step limit ----------------------------------------

CHAIN_AGENT = (
    AGENT_HEADER
    + WEATHER_TOOLS["works"]
    + """
    @tool
    def lookup_customer(self, id: str) -> dict:
        \"\"\"Look a customer up by id.\"\"\"
        return {"id": id, "name": "Ada Lovelace", "city": "London"}
"""
)


async def test_a_tool_chain_stays_within_the_step_limit(tmp_path: Path) -> None:
    from platform_core.config import PlatformConfig
    from platform_core.events import ToolCallUpdated, TurnCompleted
    from platform_core.platform import Platform

    config = PlatformConfig()
    config.server.port = 0
    config.voice.max_tool_steps = 2
    platform = Platform(config)
    await platform.start()
    process = spawn_agent(write_agent(tmp_path, CHAIN_AGENT), platform.gateway_url, config.server.api_key)
    calls: list[ToolCallUpdated] = []
    platform.bus.subscribe(
        lambda e: calls.append(e) if isinstance(e, ToolCallUpdated) and e.status != "started" else None
    )
    try:
        await asyncio.sleep(2.0)
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        async with platform.bus.stream() as events:
            question = "What's the weather in San Francisco and in Paris?"
            report = place_call(platform.url, "tools", text=question, api_key=config.server.api_key)
            task = asyncio.ensure_future(report)
            await events.next_matching(lambda e: isinstance(e, TurnCompleted), timeout=120)
            await task
        assert [(c.name, c.arguments) for c in calls] == [
            ("get_weather", {"location": "San Francisco"}),
            ("get_weather", {"location": "Paris"}),
        ]
        assert all(c.status == "done" for c in calls)
    finally:
        await stop(process)
        await platform.stop()
