"""The app's behaviour: wires the window's intents to the platform's lifecycle (`app.platform_lifecycle`)
and the call (`app.call_session`), shows the platform's events, opens, exports and saves files.

Widgets only show state and emit intents; these objects act on them. They talk to the platform
through its public API only (Platform, CallClient, the bus and its events).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.app_settings import AppSettings, save_app_settings
from app.call_session import Call, CallSession
from app.main_window import MainWindow
from app.platform_lifecycle import PlatformLifecycle
from app.recording import RecordingError, conversations_dir, export_metrics, load_conversation
from app.tasks import BackgroundTasks
from app.viewmodels.session import SessionModel
from platform_core import EventBus, PlatformConfig, save_settings
from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    ConversationStateChanged,
    ErrorOccurred,
    Event,
)

if TYPE_CHECKING:
    from app.review_window import ReviewWindow
    from platform_core import Platform


class AppController(QObject):
    def __init__(
        self,
        window: MainWindow,
        session: SessionModel,
        bus: EventBus,
        config: PlatformConfig,
        app_settings: AppSettings,
        *,
        input_wav: Path | None = None,
        settings_path: Path | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.session = session
        self.bus = bus
        self.config = config
        self.app_settings = app_settings
        self.settings_path = settings_path
        self.review_windows: list[ReviewWindow] = []
        self.qa_windows: list[object] = []  # open QA windows, kept alive
        self._restart_after_call = False
        self.tasks = BackgroundTasks(self._task_crashed)
        self.lifecycle = PlatformLifecycle(window, session, bus, config, self.tasks, on_ready=self._platform_ready)
        self.call_session = CallSession(
            window,
            session,
            bus,
            config,
            app_settings,
            self.lifecycle,
            self.tasks,
            on_ended=self._call_ended,
            input_wav=input_wav or (Path(app_settings.input_wav) if app_settings.input_wav else None),
        )
        bus.subscribe(self._on_bus_event)  # recorder and meter: not GUI, they want every event at once
        self._connect_window()
        window.set_conversations_dir(conversations_dir())
        window.set_push_to_talk(app_settings.push_to_talk)
        window.set_input_source(self.call_session.input_name())
        self.call_session.show_idle()

    def _connect_window(self) -> None:
        w, calls, spawn = self.window, self.call_session, self.tasks.spawn
        w.call_requested.connect(lambda customer, agent: spawn(calls.start(customer, agent)))
        w.hangup_requested.connect(lambda: spawn(calls.hangup()))
        w.text_submitted.connect(lambda text: spawn(calls.send_text(text)))
        w.mute_changed.connect(calls.set_muted)
        w.push_to_talk_changed.connect(calls.set_push_to_talk)
        w.talk_pressed.connect(calls.set_talking)
        w.input_wav_chosen.connect(calls.set_input_wav)
        w.export_requested.connect(self.export)
        w.open_requested.connect(self.open_conversation)
        w.settings_requested.connect(self.edit_settings)
        w.qa_requested.connect(self.open_qa)

    def _task_crashed(self, exc: BaseException) -> None:
        self.window.show_failure(
            "Unexpected error", f"{type(exc).__name__}: {exc}", "See the event log; the app keeps running."
        )

    # --- what the app's drivers (main, tests) read and do --------------------------------------

    @property
    def platform(self) -> Platform | None:
        return self.lifecycle.platform

    @property
    def ready(self) -> bool:
        return self.lifecycle.ready

    @property
    def call(self) -> Call | None:
        return self.call_session.call

    @call.setter
    def call(self, call: Call | None) -> None:
        self.call_session.call = call

    @property
    def last_recording(self) -> Path | None:
        return self.call_session.last_recording

    @property
    def input_wav(self) -> Path | None:
        return self.call_session.input_wav

    def set_input_wav(self, path: Path | None) -> None:
        self.call_session.set_input_wav(path)

    async def start_platform(self) -> bool:
        return await self.lifecycle.start()

    def platform_settings(self) -> tuple[dict[str, object], dict[str, object]]:
        return self.lifecycle.loaded_settings()

    async def restart_platform(self) -> None:
        """Apply new engine or server settings: the platform stops and starts again with them, engines
        reload with visible progress, and agents reconnect. A call in progress finishes first."""
        if self.call is not None:
            self._restart_after_call = True
            self.call_session.notice(
                "settings",
                "Settings saved",
                "the new engine and server settings apply when this call ends",
                "Hang up to apply them now.",
            )
            return
        await self.lifecycle.restart()

    async def shutdown(self) -> None:
        await self.call_session.hangup()
        self.call_session.remote_health.stop()
        await self.lifecycle.stop()

    def _platform_ready(self) -> None:
        if self.call is None:
            self.window.set_call_state("idle")

    def _call_ended(self) -> None:
        if self._restart_after_call:
            self._restart_after_call = False
            self.tasks.spawn(self.restart_platform())

    # --- events ---------------------------------------------------------------------------------

    def _on_bus_event(self, event: Event) -> None:
        self.call_session.on_event(event)
        call = self.call
        if isinstance(event, AgentDisconnected):
            self._agent_disconnected(event)
        elif isinstance(event, AgentConnected):
            self.window.show_status(f"Agent {event.customer_id} connected", 5000)
        elif isinstance(event, ErrorOccurred) and event.where != "engines":  # engines: shown by the lifecycle
            self.window.show_failure(f"Problem in {event.where}", event.message, event.hint, modal=False)
        elif isinstance(event, ConversationStateChanged) and call and event.conversation_id == call.conversation_id:
            self.window.show_conversation_state(event.state)

    def _agent_disconnected(self, event: AgentDisconnected) -> None:
        message = f"The agent {event.customer_id} disconnected ({event.reason or 'no reason given'})."
        call = self.call
        if call is None or call.customer_id != event.customer_id:
            self.window.show_status(message, 15000)
            return
        if event.customer_id in self.lifecycle.connected_customers():
            hint = "Another instance of the agent is still connected and serves the call."
        else:
            hint = (
                "The call goes on without the agent's tools (the plain assistant answers). Restart the agent:"
                " it picks running calls up again."
            )
        self.call_session.notice("agent", "Agent disconnected", message, hint)

    # --- files and settings ---------------------------------------------------------------------

    def export(self, path: Path, fmt: str) -> None:
        try:
            export_metrics(self.session, path, fmt)
        except OSError as exc:
            self.window.show_failure(
                "Export failed",
                f"{path} could not be written: {exc.strerror or exc}.",
                "Choose a folder you can write to.",
            )
            return
        self.window.show_status(f"Metrics exported to {path}", 10000)

    def open_conversation(self, folder: Path) -> None:
        from app.review_window import ReviewWindow

        try:
            saved = load_conversation(folder)
        except RecordingError as exc:
            self.window.show_failure("Cannot open the conversation", exc.message, exc.hint)
            return
        review = ReviewWindow(saved)
        self.review_windows.append(review)
        review.show()

    def open_qa(self) -> None:
        """The QA window, running suites against this app's platform with its API key (docs/qa.md)."""
        from app.qa_window import QaWindow
        from platform_core import user_data_dir

        platform = self.lifecycle.platform
        if platform is None or platform.health() != "ok\n":
            self.window.show_failure(
                "The platform is not ready", "QA suites run against the app's platform.", "Wait until it is ready."
            )
            return
        qa = QaWindow(platform.url, self.config.server.api_key, user_data_dir() / "qa-reports")
        self.qa_windows.append(qa)
        qa.show()

    def edit_settings(self) -> None:
        from app.audio_io import list_devices
        from app.settings_dialog import SettingsDialog

        def devices(rescan: bool) -> tuple[list[str], list[str]]:
            inputs, outputs = list_devices(rescan)
            return [d.name for d in inputs], [d.name for d in outputs]

        dialog = SettingsDialog(self.config, self.app_settings, devices, self.window)
        if dialog.exec():
            loaded_with = self.platform_settings()
            dialog.apply()
            self.save_settings()
            if self.platform_settings() != loaded_with:
                self.tasks.spawn(self.restart_platform())
            if self.app_settings.input_wav:
                self.set_input_wav(Path(self.app_settings.input_wav))
            else:
                self.set_input_wav(None)
            if self.call is None:
                self.call_session.show_idle()

    def save_settings(self) -> None:
        try:
            save_settings(self.config, self.settings_path)
            save_app_settings(
                self.app_settings, self.settings_path.with_name("app.json") if self.settings_path else None
            )
        except OSError as exc:
            self.window.show_failure(
                "Settings not saved", f"They could not be written: {exc}.", "Check that your config folder is writable."
            )
