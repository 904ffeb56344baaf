"""agent_sdk: schemas from signatures, decorators, hooks, per-conversation state, discovery, CLI."""

from __future__ import annotations

import asyncio
import enum
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

from agent_sdk import Agent, ConversimpleAgent, Dispatcher, ToolCall, load_agents, tool, tool_async
from agent_sdk.schema import function_schema, parse_docstring
from agent_sdk.wire import Channel, join_result, parse
from tests.agents_helpers import ROOT, running_gateway, spawn_agent, stop, wait_until


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def sample(
    city: Annotated[str, "City name"],
    days: int,
    units: Literal["metric", "imperial"] = "metric",
    tags: list[str] | None = None,
    color: Color = Color.RED,
    ratio: float = 0.5,
) -> dict[str, object]:
    """Forecast for a city.

    More words that are not the summary.

    Args:
        days: How many days ahead,
            at most 7.
        units: Unit system.
    """
    return {}


def test_schema_from_hints_defaults_annotated_and_docstring() -> None:
    summary, schema = function_schema(sample)
    assert summary == "Forecast for a city."
    props = schema["properties"]
    assert schema["required"] == ["city", "days"]
    assert props["city"] == {"type": "string", "description": "City name"}
    assert props["days"] == {"type": "integer", "description": "How many days ahead, at most 7."}
    assert props["units"] == {
        "type": "string",
        "enum": ["metric", "imperial"],
        "description": "Unit system.",
        "default": "metric",
    }
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": None}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"], "default": "red"}
    assert props["ratio"] == {"type": "number", "default": 0.5}


def test_docstring_without_args() -> None:
    assert parse_docstring("One line.") == ("One line.", {})
    assert parse_docstring(None) == ("", {})


class Shop(Agent):
    agent_id = "shop"

    @tool
    def plain(self, item: str) -> str:
        """Bare decorator; the docstring is the description."""
        return item

    @tool("Conversimple style description")
    def described(self, n: int) -> int:
        return n

    @tool_async("Async, conversimple style")
    async def fetch(self, key: str) -> str:
        return key

    @tool(name="renamed", timeout=5)
    async def original(self) -> str:
        """Options as keywords."""
        return "x"


def test_decorators_discover_every_tool_style() -> None:
    tools = Shop(api_key="k").tools
    assert set(tools) == {"plain", "described", "fetch", "renamed"}
    assert tools["plain"].description == "Bare decorator; the docstring is the description."
    assert tools["described"].description == "Conversimple style description"
    assert tools["fetch"].is_async and not tools["plain"].is_async
    assert tools["renamed"].wire()["timeout_seconds"] == 5
    assert "timeout_seconds" not in tools["plain"].wire()
    assert ConversimpleAgent is Agent


def test_tools_run_sync_in_a_thread_and_async_awaited() -> None:
    shop = Shop(api_key="k")

    async def run() -> tuple[object, object]:
        return await shop.tools["plain"].invoke({"item": "a"}), await shop.tools["fetch"].invoke({"key": "b"})

    assert asyncio.run(run()) == ("a", "b")


def test_hooks_can_be_overridden_or_set_as_callbacks() -> None:
    seen: list[object] = []

    class Overriding(Agent):
        def on_conversation_started(self, conversation_id: str) -> None:
            seen.append(("override", conversation_id, self.conversation_id))

        async def on_tool_called(self, tool_call: ToolCall) -> None:
            seen.append(("async override", tool_call.tool_name))

    plain = Agent(api_key="k")
    plain.on_conversation_ended(lambda cid: seen.append(("callback", cid)))

    async def run() -> None:
        agent = Overriding(api_key="k")
        await agent._fire("conversation_started", "c1")
        await agent._fire("tool_called", ToolCall("id", "t", {}, "c1"))
        await plain._fire("conversation_ended", "c2")
        await plain._fire("conversation_started", "c3")  # nothing registered: nothing happens

    asyncio.run(run())
    assert seen == [("override", "c1", "c1"), ("async override", "t"), ("callback", "c2")]


def test_state_is_per_conversation() -> None:
    agent = Agent(api_key="k")
    with agent._in_conversation("a"):
        agent.state["x"] = 1
    with agent._in_conversation("b"):
        assert agent.state == {}
    assert agent.state_for("a") == {"x": 1}


def test_wire_frames() -> None:
    channel = Channel("acme")
    assert '"event":"phx_join"' in channel.join() and '"topic":"customer:acme"' in channel.join()
    ok = parse('["1","1","customer:acme","phx_reply",{"status":"ok","response":{}}]')
    assert ok is not None and join_result(ok) is None
    refused = parse('["1","1","t","phx_reply",{"status":"error","response":{"reason":"unauthorized: x"}}]')
    assert join_result(refused) == "unauthorized: x"
    assert parse("not json") is None


def test_dispatcher_picks_by_agent_id() -> None:
    dispatcher = Dispatcher([Shop], "k", "ws://x")
    assert dispatcher.pick("shop") is Shop and dispatcher.pick(None) is Shop and dispatcher.pick("other") is None


def test_load_agents_from_resources() -> None:
    classes = {cls.__name__: cls for cls in load_agents(ROOT / "resources" / "agents")}
    assert set(classes) == {"SeedAgent", "DentalClinicAgent"}
    seed = classes["SeedAgent"](api_key="k")
    assert {"get_weather", "book_appointment", "lookup_customer"} == set(seed.tools)


def test_cli_without_agents_explains(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "agent_sdk.cli", "run", str(tmp_path), "--api-key", "k"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 2 and "no Agent subclass" in result.stderr


async def test_a_conversimple_agent_runs_on_agent_sdk_after_changing_its_import(tmp_path: Path) -> None:
    source = (ROOT / "resources/agents/conversimple_sdk/conversimple_seed_agent.py").read_text()
    moved = tmp_path / "moved_agent.py"
    moved.write_text(source.replace("from conversimple import", "from agent_sdk import"))
    async with running_gateway() as platform:
        agent = spawn_agent(moved, platform.url(), "key-acme")
        try:
            await wait_until(lambda: any(a.joined for a in platform.gateway.agents()), 15)
            await platform.gateway.conversation_started("c1", "seed", "acme")
            assert await platform.gateway.wait_for_tools("c1", 10)
            weather = await platform.gateway.call_tool("c1", "get_weather", {"location": "Braga"})
            booking = await platform.gateway.call_tool("c1", "book_appointment", {"date": "d", "time": "t"})
            missing = await platform.gateway.call_tool("c1", "lookup_customer", {"id": "1"})
            assert weather.result["location"] == "Braga" and booking.result["confirmed"]
            assert missing.status == "error" and "no customer with id 1" in (missing.error or "")
        finally:
            await stop(agent)


async def test_conversimple_connection_options_and_giving_up() -> None:
    agent = Shop(
        api_key="k",
        platform_url="ws://127.0.0.1:9/customer_sdk/websocket",
        max_reconnect_attempts=2,
        reconnect_backoff=3.0,
        max_backoff=0.05,
        backoff_initial=0.01,
    )
    started = asyncio.get_running_loop().time()
    try:
        await agent.start()
    except ConnectionError as exc:
        assert "gave up after 2 reconnection attempts" in str(exc)
    else:
        raise AssertionError("start() should fail: nothing listens on port 9")
    assert asyncio.get_running_loop().time() - started < 5
