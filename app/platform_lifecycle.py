"""The platform in the app's process: started behind the window, restarted with new settings, ready
once its engines are loaded. The window shows each step; calls are `app.call_session`'s."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import platform_core
from app.main_window import MainWindow
from app.tasks import BackgroundTasks
from app.viewmodels.session import SessionModel
from platform_core import EventBus, PlatformConfig

if TYPE_CHECKING:
    from platform_core import Platform


def _load_platform() -> type[Platform]:
    """Import the platform (aiortc, av, numpy, the engines' modules: ~0.7 s); run off the GUI thread."""
    return platform_core.Platform


def _load_audio() -> None:
    """Import sounddevice (PortAudio scans the devices as it loads) before the first call, off the GUI
    thread: on the first Call press it froze the window for 110-160 ms. A failure is explained at the call."""
    from app.audio_io import AudioDeviceError, _sounddevice

    with contextlib.suppress(AudioDeviceError):
        _sounddevice()


class PlatformLifecycle:
    """Starts, restarts and stops the platform; `ready` once its engines are loaded."""

    def __init__(
        self,
        window: MainWindow,
        session: SessionModel,
        bus: EventBus,
        config: PlatformConfig,
        tasks: BackgroundTasks,
        *,
        on_ready: Callable[[], None],
    ) -> None:
        self.window = window
        self.session = session
        self.bus = bus
        self.config = config
        self._tasks = tasks
        self._on_ready = on_ready  # the engines are loaded: calls can start
        self.platform: Platform | None = None
        self.ready = False

    async def start(self) -> bool:
        """Serve at once, load engines in the background; False (explained) if it cannot start."""
        self.window.set_platform_starting()
        # Imported here, off the window's critical path: the window is already on screen.
        try:
            platform_type = await asyncio.to_thread(_load_platform)
        except ImportError as exc:
            self.window.set_platform_down("The platform is not installed correctly")
            self.window.show_failure(
                "The platform could not be loaded",
                f"Python could not import it: {exc}.",
                "Reinstall with `make setup`; the app still opens saved conversations.",
            )
            return False
        platform = self.platform = platform_type(self.config, bus=self.bus)
        self._tasks.spawn(asyncio.to_thread(_load_audio))
        try:
            await platform.start(wait_for_engines=False)
        except platform_core.PlatformError as exc:
            self.window.set_platform_down("The platform is not running")
            self.window.show_failure("The platform could not start", exc.message, exc.hint)
            self.platform = None
            return False
        self.window.set_platform_url(platform.gateway_url)
        self.window.set_api_key(self.config.server.main_key())
        for agent in platform.agents():  # agents that connected before we subscribed
            self.session.agents.connected(agent.connection_id, agent.customer_id, agent.remote, time.monotonic())
        self._tasks.spawn(self._await_engines(platform, platform_core.PlatformError))
        return True

    def loaded_settings(self) -> tuple[dict[str, object], dict[str, object]]:
        """The settings the running platform read once, at start: its engines and its server.
        (The voice loop's thresholds are read by each new call, so they need no restart.)"""
        return dataclasses.asdict(self.config.engines), dataclasses.asdict(self.config.server)

    async def restart(self) -> None:
        """Stop and start again with the current settings: engines reload with visible progress, agents
        reconnect. The caller makes sure no call is running."""
        self.ready = False
        self.window.set_call_state("unavailable")
        self.window.set_engines_failed(None)
        self.session.engines.clear()  # the new platform reports its own progress
        await self.stop()
        await self.start()

    async def _await_engines(self, platform: Platform, error_type: type[platform_core.StudioError]) -> None:
        try:
            await platform.wait_ready()
        except error_type as exc:
            self.window.set_engines_failed("Engines failed to load: calls are unavailable")
            self.window.show_failure("An engine could not load", exc.message, exc.hint)
            return
        self.ready = True
        self.window.set_ready(f"Ready. Agents connect to {platform.gateway_url}")
        self._on_ready()

    def connected_customers(self) -> set[str]:
        """The customers with an agent connected now (none while the platform is down)."""
        return {agent.customer_id for agent in self.platform.agents()} if self.platform is not None else set()

    async def stop(self) -> None:
        if self.platform is not None:
            platform, self.platform = self.platform, None
            with contextlib.suppress(Exception):
                await platform.stop()
