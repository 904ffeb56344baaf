"""Where the app's calls go: the platform the app hosts, or another platform or a cluster's front door.

A remote platform's conversation never reaches the app's own bus, so its events come over the call's
signalling feed and are published on the app's bus: the panels, the recording and the mouth-to-ear meter
work as for a local call. Events about the remote platform's agents or engines are not the app's and are
left out (the agents panel and the status bar stay about the platform this app hosts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from platform_core import StudioError
from platform_core.events import Event


@dataclass(frozen=True)
class CallTarget:
    url: str
    api_key: str | None
    remote: bool


def normalise_url(text: str) -> str:
    """A platform's address as typed ("host:8770", "http://host:8770/"), as http(s)://host:port;
    ValueError says what is wrong with it."""
    text = text.strip().rstrip("/")
    if not text:
        return ""
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http:// or https:// address")
    try:
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError:
        raise ValueError(f"{text!r} has a port that is not a number") from None
    if not parts.hostname:
        raise ValueError(f"{text!r} names no host")
    return f"{parts.scheme}://{parts.netloc}"


def remote_target(remote_url: str, remote_api_key: str) -> CallTarget | None:
    """The remote platform set in the settings, or None for the platform this app hosts."""
    url = normalise_url(remote_url)
    return CallTarget(url, remote_api_key.strip() or None, remote=True) if url else None


class NoCallTarget(StudioError):
    """A call cannot go anywhere now: `message` and `hint` say why and what to do, under `title`."""

    def __init__(self, title: str, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.title = title


def call_target(remote_url: str, remote_api_key: str, local_url: str | None, local_key: str | None) -> CallTarget:
    """The remote platform when one is set, else the app's own (`local_url`, None while it is not ready)."""
    try:
        remote = remote_target(remote_url, remote_api_key)
    except ValueError as exc:
        raise NoCallTarget(
            "The call could not start",
            f"The remote platform's address is not usable: {exc}.",
            "Fix it in Settings > Server and keys, or leave it empty to call this computer's platform.",
        ) from None
    if remote is not None:
        return remote
    if local_url is None:
        raise NoCallTarget(
            "Not ready",
            "The platform is still loading its engines, or failed to.",
            "Wait for 'Ready' in the status bar, or read the error shown before.",
        )
    return CallTarget(local_url, local_key, remote=False)


def served_by(target: CallTarget, worker: str | None) -> str:
    """What the status bar says serves the call ("" for the app's own platform)."""
    if not target.remote:
        return ""
    if worker:
        return f"served by worker {worker} (front door {target.url})"
    return f"served by the platform at {target.url}"


def conversation_events(
    publish: Callable[[Event], None], conversation_id: Callable[[], str | None]
) -> Callable[[Event], None]:
    """A feed handler publishing the events of the call's own conversation (as `conversation_id()` names
    it once answered) and nothing else."""

    def forward(event: Event) -> None:
        cid = getattr(event, "conversation_id", None)
        if cid is not None and cid == conversation_id():
            publish(event)

    return forward
