"""Fuzz: thousands of random and mutated frames against the gateway while a real agent keeps serving."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from platform_core.protocol import MAX_FRAME_BYTES
from tests.agents_helpers import running_gateway, spawn_agent, stop, wait_until, write_agent

FRAMES_PER_ROUND = 700
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
    if kind < 0.95:
        return "[" * rng.randint(1000, 200_000)
    if kind < 0.97:
        return json.dumps({**base, "payload": {"call_id": "x", "result": "r" * (MAX_FRAME_BYTES + 10)}})
    return "".join(chr(rng.randint(1, 0x10FFFF)) for _ in range(rng.randint(0, 40))).encode("utf-8", "replace")


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
                if rng.random() < 0.7:
                    await ws.send(json.dumps(VALID[0]))
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
            served: list[str] = []
            stop_serving = asyncio.Event()

            async def keep_calling() -> None:
                n = 0
                while not stop_serving.is_set():
                    n += 1
                    outcome = await platform.gateway.call_tool("good", "echo", {"value": str(n)})
                    served.append(outcome.status if outcome.result == {**outcome.result, "value": str(n)} else "bad")
                    await asyncio.sleep(0.002)

            caller = asyncio.create_task(keep_calling())
            rss: list[int] = []
            for round_ in range(2):
                fuzzers = [
                    _fuzz_connection(platform.url(), key, random.Random(rng.random()), FRAMES_PER_ROUND // 3)
                    for key in ("key-acme", "key-acme", "wrong-key")
                ]
                await asyncio.gather(*fuzzers)
                rss.append(process.memory_info().rss)
                assert served and set(served) == {"done"}, f"round {round_}: {set(served)}"
            stop_serving.set()
            await caller
            total = 2 * 3 * (FRAMES_PER_ROUND // 3)
            assert total >= 1000
            # the well-behaved agent was served throughout; memory did not climb between rounds
            assert len(served) > 50
            assert rss[1] - rss[0] < 40 * 1024 * 1024, rss
            assert len(platform.gateway._core.calls) == 0
            await wait_until(lambda: [a.customer_id for a in platform.gateway.agents()] == ["globex"], 10)
            final = await platform.gateway.call_tool("good", "get_weather", {"location": "after the storm"})
            assert final.status == "done"
        finally:
            await stop(agent)
