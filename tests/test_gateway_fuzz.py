"""Fuzz: over 10,000 random and mutated frames against the gateway while a real agent keeps serving.

Besides random and byte-level mutations: every field of every client frame with each wrong-typed value,
tool schemas the LLM's grammar rejects, deep JSON, and same-key attempts to take the real agent's
conversation (each must be refused while the agent is called throughout)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from platform_core.protocol import MAX_FRAME_BYTES
from tests.agents_helpers import running_gateway, spawn_agent, stop, wait_until, write_agent

FRAMES_PER_CONNECTION = 1300
CONNECTIONS = ("key-acme", "key-acme", "key-acme", "key-globex", "wrong-key")  # globex: same key as the agent
ROUNDS = 2
VALID = [
    {"join_ref": "1", "ref": "1", "topic": "customer:acme", "event": "phx_join", "payload": {}},
    {"join_ref": None, "ref": "2", "topic": "customer:acme", "event": "heartbeat", "payload": {}},
    {
        "join_ref": None,
        "ref": "3",
        "topic": "customer:acme",
        "event": "register_conversation_tools",
        "payload": {
            "conversation_id": "fuzz",
            "tools": [{"name": "t", "description": "d", "parameters": {"type": "object", "properties": {}}}],
        },
    },
    {
        "join_ref": None,
        "ref": "4",
        "topic": "customer:acme",
        "event": "tool_call_response",
        "payload": {"call_id": "call_x_1", "conversation_id": "fuzz", "result": {"ok": True}},
    },
    {
        "join_ref": None,
        "ref": "5",
        "topic": "customer:acme",
        "event": "tool_call_error",
        "payload": {"call_id": "call_x_2", "error": {"message": "m", "timestamp": "t"}},
    },
]
JUNK: list[Any] = [None, True, 0, -1, 1e308, "", "x" * 300, [], {}, [[[]]], {"a": {"b": None}}, "é\u2028\ud7ff"]
REJECTED_SCHEMAS: list[Any] = [  # shapes the real llama-server refuses or hangs on (test_gateway_core.py)
    {"type": "object", "properties": {"x": {"type": "strin"}}},
    {"type": "object", "properties": {"x": {"enum": []}}},
    {"type": "object", "properties": {"x": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}},
    {"type": "object", "properties": {"x": {"type": "string", "minLength": 5, "maxLength": 2}}},
    {"type": "object", "properties": {"x": {"type": "array", "minItems": 9000}}},
    {"type": "object", "properties": {"x": {"type": "array", "items": False}}},
    {"type": "object", "properties": {"x": {"type": "string", "pattern": "(("}}},
]
TOOL = {"name": "t", "description": "d", "parameters": {"type": "object", "properties": {}}}


def wrong_types() -> list[str]:
    """Every field of every valid frame (and of a tool), replaced by each junk value in turn."""
    frames: list[str] = []
    for valid in VALID:
        for key in [*valid, *valid["payload"]]:
            for junk in JUNK:
                frame = json.loads(json.dumps(valid))
                (frame if key in frame else frame["payload"])[key] = junk
                frames.append(json.dumps(frame))
    for key in TOOL:
        for junk in JUNK:
            frames.append(json.dumps(_register("fuzz", [TOOL, {**TOOL, "name": "u", key: junk}])))
    return frames


def _register(conversation: str, tools: Any, topic: str = "customer:acme") -> dict[str, Any]:
    payload = {"conversation_id": conversation, "tools": tools}
    return {"join_ref": None, "ref": "9", "topic": topic, "event": "register_conversation_tools", "payload": payload}


def special_frame(rng: random.Random) -> str:
    """A grammar-rejected schema, a hijack attempt on the real agent's conversation, or deep JSON."""
    kind = rng.random()
    if kind < 0.4:
        return json.dumps(
            _register("fuzz", [TOOL, {**TOOL, "name": "bad", "parameters": rng.choice(REJECTED_SCHEMAS)}])
        )
    if kind < 0.7:  # on customer:globex the agent's conversation; on customer:acme another customer's
        return json.dumps(
            _register("good", [{**TOOL, "name": "echo"}], rng.choice(["customer:globex", "customer:acme"]))
        )
    depth = rng.randint(20, 5000)  # JSON text: the encoder would recurse as deep
    if depth < 400:  # a deep but decodable schema; deeper ones do not decode
        schema = '{"type":"object","properties":{"n":' * depth + "{}" + "}}" * depth
        return json.dumps(_register("fuzz", [{**TOOL, "parameters": None}])).replace("null", schema)
    return '{"topic":"customer:acme","event":"heartbeat","payload":' + "[" * depth + "]" * depth + "}"


def random_value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.5:
        return rng.choice(JUNK)
    if rng.random() < 0.5:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        rng.choice(["event", "topic", "payload", "ref", "call_id", "tools", "k"]): random_value(rng, depth + 1)
        for _ in range(rng.randint(0, 4))
    }


def fuzz_frame(rng: random.Random) -> str | bytes:
    kind = rng.random()
    if kind < 0.1:
        return special_frame(rng)
    if kind < 0.2:
        return rng.choice(WRONG_TYPES)
    kind = rng.random()
    base = json.loads(json.dumps(rng.choice(VALID)))
    if kind < 0.25:  # structural mutation of a valid frame
        target = base if rng.random() < 0.5 else base["payload"]
        target[rng.choice([*target.keys(), "extra"])] = random_value(rng)
        if rng.random() < 0.2:
            base["event"] = rng.choice(["dance", "phx_leave", "tool_call_request", "", "conversation_ready"])
        if rng.random() < 0.2:
            base["topic"] = rng.choice(["customer:globex", "phoenix", "", "customer:"])
        return json.dumps(base)
    text = json.dumps(base)
    if kind < 0.55:  # byte-level mutation
        chars = list(text)
        for _ in range(rng.randint(1, 8)):
            op, at = rng.random(), rng.randrange(len(chars))
            if op < 0.4:
                chars[at] = chr(rng.randint(0, 0x2FF))
            elif op < 0.7:
                del chars[at]
            else:
                chars.insert(at, rng.choice('{}[]",:\\0'))
        return "".join(chars)
    if kind < 0.7:
        return text[: rng.randrange(len(text))]
    if kind < 0.8:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    if kind < 0.9:
        return json.dumps(random_value(rng))
    if kind < 0.94:
        return "[" * rng.randint(1000, 200_000)
    if kind < 0.95:
        return json.dumps({**base, "payload": {"call_id": "x", "result": "r" * (MAX_FRAME_BYTES + 10)}})
    return "".join(chr(rng.randint(1, 0x10FFFF)) for _ in range(rng.randint(0, 40))).encode("utf-8", "replace")


WRONG_TYPES = wrong_types()


async def _fuzz_connection(url: str, key: str, rng: random.Random, frames: int) -> None:
    """Send `frames` fuzz frames, reconnecting whenever the gateway closes on us."""
    sent = 0
    while sent < frames:
        try:
            async with connect(
                url + f"?auth_token={key}",
                subprotocols=["phoenix-websocket"],  # type: ignore[list-item]
                max_size=None,
                close_timeout=1,
            ) as ws:
                reader = asyncio.create_task(_drain(ws))
                if rng.random() < 0.8:
                    topic = "customer:globex" if key == "key-globex" else "customer:acme"
                    await ws.send(json.dumps({**VALID[0], "topic": topic}))
                while sent < frames:
                    sent += 1
                    await ws.send(fuzz_frame(rng))
                    if sent % 50 == 0:
                        await asyncio.sleep(0)
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(json.dumps(VALID[1]))
                await asyncio.sleep(0.05)
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
        except ConnectionClosed:
            pass


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def test_fuzzed_frames_do_not_disturb_the_gateway(tmp_path: Path) -> None:
    rng = random.Random(1234)
    process = psutil.Process()
    async with running_gateway() as platform:
        agent = spawn_agent(write_agent(tmp_path), platform.url(), "key-globex")
        try:
            await wait_until(lambda: any(a.joined for a in platform.gateway.agents()), 15)
            await platform.gateway.conversation_started("good", "test", "globex")
            await platform.gateway.conversation_started("fuzz", "test", "acme")
            assert await platform.gateway.wait_for_tools("good", 10)
            [agent_connection] = [a.connection_id for a in platform.gateway.agents()]
            served: list[str] = []
            stop_serving = asyncio.Event()

            async def keep_calling() -> None:
                n = 0
                while not stop_serving.is_set():
                    n += 1
                    outcome = await platform.gateway.call_tool("good", "echo", {"value": str(n)})
                    ok = isinstance(outcome.result, dict) and outcome.result.get("value") == str(n)
                    served.append(outcome.status if ok else f"bad: {outcome.status} {outcome.error}")
                    await asyncio.sleep(0.002)

            caller = asyncio.create_task(keep_calling())
            rss = [process.memory_info().rss]
            started = time.monotonic()
            for round_ in range(ROUNDS):
                fuzzers = [
                    _fuzz_connection(platform.url(), key, random.Random(rng.random()), FRAMES_PER_CONNECTION)
                    for key in CONNECTIONS
                ]
                await asyncio.gather(*fuzzers)
                rss.append(process.memory_info().rss)
                assert served and set(served) == {"done"}, f"round {round_}: {set(served)}"
            elapsed = time.monotonic() - started
            stop_serving.set()
            await caller
            total = ROUNDS * len(CONNECTIONS) * FRAMES_PER_CONNECTION
            mib = [round(r / 2**20, 1) for r in rss]
            print(f"\nfuzz: {total} frames in {elapsed:.1f} s, {len(served)} calls served, RSS MiB {mib}")
            assert total >= 10_000
            # the well-behaved agent was served throughout and kept its conversation; memory stayed flat
            assert len(served) > 50
            assert rss[2] - rss[1] < 40 * 1024 * 1024, mib
            assert len(platform.gateway._core.calls) == 0
            assert platform.gateway._core.conversations["good"].owner == agent_connection
            await wait_until(lambda: [a.customer_id for a in platform.gateway.agents()] == ["globex"], 10)
            # after the storm the agent still registers for a new conversation and serves a call in it
            await platform.gateway.conversation_started("after", "test", "globex")
            assert await platform.gateway.wait_for_tools("after", 10)
            final = await platform.gateway.call_tool("after", "get_weather", {"location": "after the storm"})
            assert final.status == "done" and final.result["pid"] == agent.pid
        finally:
            await stop(agent)
