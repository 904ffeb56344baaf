"""Where the app's calls go (app/call_target.py): the address as typed, what the status bar says, and
which relayed events reach the app's bus. The call itself through a front door is in
tests/test_cluster_front.py (real processes)."""

from __future__ import annotations

import pytest

from app.call_target import (
    CallTarget,
    NoCallTarget,
    call_target,
    conversation_events,
    normalise_url,
    remote_target,
    served_by,
)
from app.remote_health import describe
from platform_core.events import AgentConnected, Event, TranscriptFinal


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("front.example:8770", "http://front.example:8770"),
        (" http://10.0.0.5:8770/ ", "http://10.0.0.5:8770"),
        ("https://studio.example", "https://studio.example"),
        ("", ""),
    ],
)
def test_an_address_is_taken_as_typed_with_or_without_its_scheme(typed: str, url: str) -> None:
    assert normalise_url(typed) == url


@pytest.mark.parametrize(
    ("typed", "why"),
    [("ws://host:8770", "not an http"), ("host:port", "port that is not a number"), ("http://:8770", "names no host")],
)
def test_an_unusable_address_says_what_is_wrong(typed: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalise_url(typed)


def test_the_status_bar_names_the_worker_or_the_platform_and_nothing_for_the_apps_own() -> None:
    assert remote_target("", "key") is None
    target = remote_target("front:8770", " key ")
    assert target == CallTarget("http://front:8770", "key", remote=True)
    assert served_by(target, "w2") == "served by worker w2 (front door http://front:8770)"
    assert served_by(target, None) == "served by the platform at http://front:8770"
    assert served_by(CallTarget("http://127.0.0.1:8765", None, remote=False), None) == ""


def test_only_the_calls_own_conversation_reaches_the_apps_bus() -> None:
    published: list[Event] = []
    current: list[str | None] = [None]
    forward = conversation_events(published.append, lambda: current[0])
    mine = TranscriptFinal(conversation_id="c1", turn_id=1, text="hello")
    forward(mine)  # before the answer named the conversation
    current[0] = "c1"
    forward(mine)
    forward(TranscriptFinal(conversation_id="c2", turn_id=1, text="someone else"))
    forward(AgentConnected(connection_id="a", customer_id="acme", remote="10.0.0.9"))  # the remote's agents
    assert published == [mine]


def test_without_a_remote_platform_the_call_waits_for_the_apps_own() -> None:
    with pytest.raises(NoCallTarget, match="still loading") as caught:
        call_target("", "", None, "key")
    assert "Ready" in caught.value.hint
    assert call_target("", "", "http://127.0.0.1:8765", "key") == CallTarget("http://127.0.0.1:8765", "key", False)
    with pytest.raises(NoCallTarget, match="address is not usable: 'ftp://x' is not an http"):
        call_target("ftp://x", "", "http://127.0.0.1:8765", "key")  # a typo is said, not silently ignored


def test_the_health_line_of_a_front_door_and_of_a_platform() -> None:
    front = {
        "status": "degraded",
        "reason": "message broker nats://b:4222: the broker connection is reconnecting",
        "role": "front",
        "workers": {"w1": {}},
        "free_capacity": 3,
        "cluster": {"state": "reconnecting"},
    }
    assert describe(front) == (
        "cluster: 1 media workers, 3 calls free, broker reconnecting"
        " (message broker nats://b:4222: the broker connection is reconnecting)",
        False,
    )
    assert describe({"status": "ok", "reason": ""}) == ("remote platform: ok", True)
