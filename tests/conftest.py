"""Shared fixtures: the real platform in its own process, and speech made with the project's voice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.harness import RunningPlatform, start_platform, stop_platform

# The desktop tests' private PulseAudio and Xvfb, defined once here: a module that bound them to names of
# its own made a session fixture of its own, and every such daemon stayed alive to the end of the run.
from tests.desktop_env import pulse_env, xvfb_display  # noqa: F401


@pytest.fixture(scope="session")
def platform_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    """One real platform (default engines, no agent) shared by the tests that only place calls."""
    running = start_platform(tmp_path_factory.mktemp("platform"))
    yield running
    stop_platform(running.process)


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def platform_url(platform_server: RunningPlatform) -> str:
    return platform_server.url
