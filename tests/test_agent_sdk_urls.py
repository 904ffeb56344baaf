"""The agent SDK given several platform URLs: parsing, and round-robin failover between real gateways."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_sdk.connection import Connection
from agent_sdk.wire import AuthenticationError, ServerMessage, platform_urls
from tests.agents_helpers import running_gateway, wait_until
from tests.cluster_helpers import free_port


def test_platform_urls_accepts_one_a_comma_list_or_a_sequence() -> None:
    assert platform_urls("ws://a/x") == ["ws://a/x"]
    assert platform_urls(" ws://a/x , ws://b/x,") == ["ws://a/x", "ws://b/x"]
    assert platform_urls(["ws://a/x", "ws://b/x,ws://c/x"]) == ["ws://a/x", "ws://b/x", "ws://c/x"]
    with pytest.raises(ValueError):
        platform_urls(" , ")


def test_a_single_url_keeps_its_query_as_before() -> None:
    async def nothing(*_args: object) -> None:
        return None

    conn = Connection("ws://h:1/customer_sdk/websocket", "k", "c", nothing, nothing)
    assert conn.urls == ["ws://h:1/customer_sdk/websocket"]
    assert conn.url == "ws://h:1/customer_sdk/websocket?customer_id=c&auth_token=k"
    conn._rotate()
    assert conn.base_url == "ws://h:1/customer_sdk/websocket"


def _connection(urls: list[str], joins: list[str]) -> Connection:
    async def on_message(_m: ServerMessage) -> None:
        return None

    conn: Connection

    async def on_connected() -> None:
        joins.append(conn.base_url)

    conn = Connection(urls, "key-acme", "acme", on_message, on_connected, backoff_initial=0.05)
    return conn


async def test_a_refused_url_moves_on_to_the_next() -> None:
    dead = f"ws://127.0.0.1:{free_port()}/customer_sdk/websocket"
    async with running_gateway() as platform:
        joins: list[str] = []
        conn = _connection([dead, platform.url()], joins)
        started = time.monotonic()
        await asyncio.wait_for(conn.start(), 5)
        print(f"joined the second URL {time.monotonic() - started:.3f} s after the first was refused")
        assert joins == [platform.url()]
        await conn.stop()


async def test_a_dropped_session_reconnects_to_the_next_url() -> None:
    async with running_gateway() as b:
        joins: list[str] = []
        async with running_gateway() as a:
            conn = _connection([a.url(), b.url()], joins)
            await asyncio.wait_for(conn.start(), 5)
            assert joins == [a.url()]
        dropped = time.monotonic()  # a's server is closed: the session drops
        await wait_until(lambda: len(joins) == 2, 5, "a join on the second URL")
        print(f"rejoined on the second URL {time.monotonic() - dropped:.3f} s after the first closed")
        assert joins == [a.url(), b.url()]
        assert conn.connected
        await conn.stop()


async def test_a_refused_key_is_permanent_whatever_the_other_urls() -> None:
    async with running_gateway() as a, running_gateway() as b:

        async def nothing(*_args: object) -> None:
            return None

        conn = Connection([a.url(), b.url()], "bad-key", "acme", nothing, nothing, backoff_initial=0.05)
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(conn.start(), 5)
        await asyncio.sleep(0.2)
        assert conn.base_url == a.url() and conn.failure is not None, "no attempt on the second URL"
        assert b.gateway.agents() == []
        await conn.stop()
