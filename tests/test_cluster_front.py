"""The front door as separate processes (docs/cluster.md): a real nats-server, `serve --role front` and two
`serve --role worker` processes with the real engines. Calls through the front door are placed by load
on the workers (the answer names the worker, presence lists the call there), the caller's media goes
to the worker over WebRTC, and after kill -9 of a worker the next call is served by the other. Loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the app's window in the last test but one

from bench.harness import RunningPlatform, stop_platform
from platform_core.audio_files import read_audio
from platform_core.calls import place_call
from platform_core.calls.text import format_report
from platform_core.transport.client import CallClient
from tests.agents_helpers import spawn_agent, stop, wait_until, write_agent
from tests.cluster_helpers import cluster_status, health, nats_server, start_role, wait_for_load, wait_for_workers
from tests.desktop_env import PulseEnv
from tests.speech import speech_wav, words
from tests.test_cluster_roles import AGENT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture(scope="module")
def workers(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningPlatform]]:
    running = {w: start_role(tmp_path_factory.mktemp(w), "worker", broker, w, "--max-calls", "4") for w in ("w1", "w2")}
    yield running
    for worker in running.values():
        stop_platform(worker.process)


@pytest.fixture(scope="module")
def front(
    broker: str, workers: dict[str, RunningPlatform], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    running = start_role(tmp_path_factory.mktemp("front"), "front", broker, "front1")
    wait_for_workers(running.url, len(workers))
    yield running
    stop_platform(running.process)


async def _answered(url: str, api_key: str) -> tuple[CallClient, float]:
    """A call held open once its media flows, and how long that took (signalling and ICE/DTLS)."""
    client = CallClient(url, api_key=api_key, feed="no-levels")
    started = time.monotonic()
    await client.connect()
    answered_s = time.monotonic() - started
    await client.wait_media()
    media_s = time.monotonic() - started
    print(f"call on {url} ({client.worker or 'direct'}): answered in {answered_s:.3f} s, media in {media_s:.3f} s")
    return client, media_s


async def _end(*clients: CallClient) -> None:
    for client in clients:
        await client.hangup()
        await client.close()


def test_the_front_door_loads_no_engine_and_reports_the_workers(front: RunningPlatform, broker: str) -> None:
    report = health(front.url)
    assert report["status"] == "ok" and report["role"] == "front" and report["node"] == "front1", report
    assert sorted(report["workers"]) == ["w1", "w2"] and report["free_capacity"] == 8, report
    assert report["cluster"]["state"] == "connected" and "engines" not in report
    maps = Path(f"/proc/{front.process.pid}/maps").read_text().lower()
    assert [lib for lib in ("llama", "whisper", "onnxruntime", "piper") if lib in maps] == []
    [entry] = [e for e in cluster_status(broker) if e["id"] == "front1"]
    assert entry["role"] == "front" and entry["url"] == front.url


async def test_calls_through_the_front_door_are_spread_over_both_workers(
    front: RunningPlatform, workers: dict[str, RunningPlatform], broker: str
) -> None:
    direct, direct_s = await _answered(workers["w1"].url, workers["w1"].api_key)
    await _end(direct)
    first, first_s = await _answered(front.url, front.api_key)
    second, second_s = await _answered(front.url, front.api_key)  # the first is still in progress
    try:
        print(
            f"call set-up: direct to a worker {direct_s:.3f} s; through the front door {first_s:.3f} / {second_s:.3f} s"
        )
        assert {first.worker, second.worker} == {"w1", "w2"}, (first.worker, second.worker)
        await asyncio.sleep(1.5)  # the workers write their presence every second
        entries = {e["id"]: e for e in cluster_status(broker)}
        for client in (first, second):
            assert client.worker is not None
            assert entries[client.worker]["conversations"] == [client.conversation_id], entries
        assert health(front.url)["calls"]["relayed_now"] == 2
    finally:
        await _end(first, second)
    report = await place_call(front.url, text="What is two plus two?", api_key=front.api_key)  # a typed turn
    [turn] = report["turns"]
    assert turn["agent_text"], report  # the conversation's events come back through the relay
    assert report["worker"] in ("w1", "w2")
    assert f"served by media worker {report['worker']}" in format_report(report)  # what `call` prints


async def test_the_app_calls_through_the_front_door_and_shows_the_worker_serving_the_call(
    front: RunningPlatform, pulse_env: PulseEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, qtbot: Any
) -> None:
    """The desktop app set to place its calls on the front door (it hosts no platform here): the spoken
    question is answered by a worker, the status bar names that worker, and the panels and the saved
    recording hold the turn, from the events relayed over the call's feed."""
    from app.app_settings import AppSettings
    from tests.test_app_session import Desk

    monkeypatch.setenv("CONVERSIMPLE_DATA_DIR", str(tmp_path / "data"))
    wav = speech_wav(tmp_path, "What is two plus two?", rate=48_000, lead_s=0.5, tail_s=1.5)
    remote = front.url.removeprefix("http://")  # typed without the scheme
    desk = Desk(qtbot, app_settings=AppSettings(remote_url=remote, remote_api_key=front.api_key), input_wav=wav)
    window, calls = desk.window, desk.controller.call_session
    try:
        assert window.call_button.isEnabled()  # no platform of the app's own is needed
        assert window.served_label.text().strip() == f"calls go to {front.url}"
        # The status bar follows the cluster's health: the front door's broker and its workers.
        line = "cluster: 2 media workers, 8 calls free, broker connected"  # the last test's calls are over
        await desk_until(lambda: window.remote_label.text().strip() == line, 10)
        await calls.start(None)
        call = calls.call
        assert call is not None and call.client.worker in ("w1", "w2"), window.notice_text()
        assert window.served_label.text().strip() == f"served by worker {call.client.worker} (front door {front.url})"
        latency = desk.session.latency
        answered = lambda: any(t.completed and t.agent_text for t in latency.turns.values())  # noqa: E731
        await desk_until(answered, 60, lambda: f"{latency.turns} {desk.event_log()[-3000:]}")
        [turn] = latency.turns.values()
        assert "plus" in turn.user_text.lower() and "e2e_latency" in turn.metrics, turn
        await calls.hangup()
    finally:
        calls.remote_health.stop()
        desk.bridge.detach()
    assert window.served_label.text().strip() == f"calls go to {front.url}"
    folder = calls.last_recording
    assert folder is not None
    transcript = json.loads((folder / "transcript.json").read_text())
    assert [line["role"] for line in transcript] == ["user", "agent"] and transcript[1]["text"], transcript
    assert read_audio(folder / "caller.wav").size and read_audio(folder / "agent.wav").size


async def desk_until(condition: Callable[[], bool], timeout_s: float, seen: Callable[[], str] = str) -> None:
    """Wait on the asyncio loop for `condition`, letting Qt deliver its queued signals (the bridge's) meanwhile:
    the test's loop is plain asyncio, not the app's qasync one."""
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while True:
        QApplication.processEvents()
        if condition():
            return
        assert time.monotonic() < deadline, f"timed out; seen: {seen()}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def gateway(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_role(tmp_path_factory.mktemp("gateway"), "gateway", broker, "gw1")
    yield running
    stop_platform(running.process)


async def test_one_agent_behind_a_gateway_node_serves_calls_on_both_workers_and_a_spoken_call_end_to_end(
    front: RunningPlatform, workers: dict[str, RunningPlatform], gateway: RunningPlatform, tmp_path: Path
) -> None:
    """The whole cluster as separate processes: a front door, two media workers, a gateway node and one agent
    connected to it. Two calls placed at once go to the two workers; each asks for the weather, and each is
    answered with the result of the one agent's tool; one of them is spoken."""
    agent = spawn_agent(
        write_agent(tmp_path, textwrap.dedent(AGENT.format(flag=str(tmp_path / "never")))),
        gateway.gateway_url,
        gateway.api_key,
    )
    try:
        await wait_until(lambda: health(gateway.url)["agents"] >= 1, 20, "the agent to connect to the gateway node")
        await asyncio.to_thread(wait_for_load, front.url, {"w1": 0, "w2": 0})
        wav = speech_wav(tmp_path, "What's the weather in San Francisco?")
        spoken, typed = await asyncio.gather(
            place_call(front.url, "tools", input_wav=wav, api_key=front.api_key),
            place_call(front.url, "tools", text="What's the weather in Lisbon?", api_key=front.api_key),
        )
    finally:
        await stop(agent)
    assert {spoken["worker"], typed["worker"]} == {"w1", "w2"}, (spoken["worker"], typed["worker"])
    for report, city in ((spoken, "san fran"), (typed, "lisb")):
        [turn] = report["turns"]
        [weather] = turn["tool_calls"]
        assert weather["name"] == "get_weather" and weather["status"] == "done", turn
        assert city in weather["arguments"]["location"].lower(), weather  # "Lisboa" was heard too
        assert weather["result"]["agent_pid"] == agent.pid  # the one agent, behind the gateway node
        assert words(turn["agent_text"]) & {"17", "seventeen", "foggy", "fog"}, turn["agent_text"]
    print(f"spoken call on {spoken['worker']}: e2e {spoken['turns'][0]['metrics'].get('e2e_latency')} s")


async def test_after_kill_9_of_a_worker_the_caller_is_told_and_the_next_call_goes_to_the_other(
    front: RunningPlatform, workers: dict[str, RunningPlatform]
) -> None:
    await asyncio.to_thread(wait_for_load, front.url, {"w1": 0, "w2": 0})
    relayed, _ = await _answered(front.url, front.api_key)
    assert relayed.worker == "w1"  # both idle: the id decides
    held = [await _answered(url, key) for url, key in _urls(workers, "w1", "w2", "w2")]
    direct = held[0][0]  # on w1: what a caller connected to the worker itself sees
    try:
        # w1 and w2 both at 2 of 4: the dead w1's entry, still in presence, ranks first (the id)
        await asyncio.to_thread(wait_for_load, front.url, {"w1": 2, "w2": 2})
        killed_at = time.monotonic()
        os.kill(workers["w1"].process.pid, signal.SIGKILL)
        relayed_reason = await asyncio.wait_for(relayed.wait_ended(), 10)
        told_s = time.monotonic() - killed_at
        direct_reason = await asyncio.wait_for(direct.wait_ended(), 10)
        print(f"kill -9 of w1: the relayed caller told in {told_s * 1000:.0f} ms ({relayed_reason!r})")
        print(f"a caller connected to w1 directly: {direct_reason!r}")
        assert "media worker w1 is gone" in relayed_reason
        assert direct_reason == "signalling connection closed"
        nxt, setup_s = await _answered(front.url, front.api_key)
        served_s = time.monotonic() - killed_at
        print(
            f"kill -9 of w1 -> the next call answered by {nxt.worker} {served_s:.2f} s later (set-up {setup_s:.3f} s)"
        )
        assert nxt.worker == "w2"
        assert "connection refused" in health(front.url)["unreachable"]["w1"]  # tried first, skipped at once
        await _end(nxt)
        report = await asyncio.to_thread(wait_for_workers, front.url, 1)  # the dead worker's presence expires
        print(f"the front door saw w1 gone {time.monotonic() - killed_at:.2f} s after the kill")
        assert list(report["workers"]) == ["w2"]
    finally:
        for client in [relayed, *(c for c, _ in held)]:
            await client.close()


def _urls(workers: dict[str, RunningPlatform], *ids: str) -> list[tuple[str, str]]:
    return [(workers[i].url, workers[i].api_key) for i in ids]
