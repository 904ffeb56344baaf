"""bench/cluster_scale.py's cluster works: a stand-in media worker (bench/standin_engines.py: no engines) behind
a real front door, nats-server, gateway node and echo agent answers a held call's typed turn with the agent's
tool, through NATS. The bench's figures are not checked here (speed is the bench's job)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.cluster_load import converse, hang_up_all, place
from bench.cluster_procs import health, start_cluster

pytestmark = pytest.mark.slow  # processes of every role; about 7 s


async def test_a_standin_worker_behind_the_front_door_answers_a_turn_with_the_agents_tool(tmp_path: Path) -> None:
    cluster = await asyncio.to_thread(start_cluster, tmp_path, 1, standin=True, max_calls=4)
    try:
        assert health(cluster.worker_url("w1"))["status"] == "ok"
        caller = await place(cluster.front.url, cluster.api_key)
        assert caller.client.worker == "w1"
        window = await converse([caller], 2.0, 5.0)
        await hang_up_all([caller])
        assert window["turns_sent"] == window["turns_answered"] == 1, window
        assert window["tool_calls_done"] == 1 and window["tool_failures"] == 0, window
        assert window["calls_ended"] == 0 and window["media_delivered_min"] > 0.5, window
    finally:
        await asyncio.to_thread(cluster.stop)
