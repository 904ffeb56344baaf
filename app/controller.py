"""The app's behaviour: runs the platform in this process, places calls, plays, records, measures.

Widgets only show state and emit intents; this object acts on them. It talks to the platform
through its public API only (Platform, CallClient, the bus and its events).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject

import platform_core
from app.app_settings import AppSettings, save_app_settings
from app.main_window import MainWindow
from app.mouth_to_ear import MouthToEarMeter
from app.recording import ConversationRecorder, RecordingError, conversations_dir, export_metrics, load_conversation
from app.viewmodels.session import SessionModel
from platform_core import EventBus, PlatformConfig, save_settings
from platform_core.events import (
    AgentConnected,
    AgentDisconnected,
    ConversationStateChanged,
    ErrorOccurred,
    Event,
    MetricMeasured,
    TurnStarted,
)

if TYPE_CHECKING:  # aiortc and av take ~0.5 s to import: not before the window is up
    from app.audio_io import AudioDeviceError, GatedSource, SpeakerOutput
    from platform_core import Platform

log = logging.getLogger(__name__)


def _load_platform() -> type[Platform]:
    """Import the platform (aiortc, av, numpy, the engines' modules: ~0.7 s); run off the GUI thread."""
    return platform_core.Platform


def _load_audio() -> None:
    """Import sounddevice (PortAudio scans the devices as it loads) before the first call, off the GUI
    thread: on the first Call press it froze the window for 110-160 ms. A failure is explained at the call."""
    from app.audio_io import AudioDeviceError, _sounddevice

    with contextlib.suppress(AudioDeviceError):
        _sounddevice()


class Call:
    """One live call: its client, audio ends, recorder and mouth-to-ear meter."""

    def __init__(self, client: Any, source: GatedSource | None, speaker: SpeakerOutput | None,
                 recorder: ConversationRecorder, meter: MouthToEarMeter, customer_id: str | None = None) -> None:
        self.client = client
        self.customer_id = customer_id  # whose agents serve the call (None: the plain assistant)
        self.source = source
        self.speaker = speaker
        self.recorder = recorder
        self.meter = meter
        self.conversation_id: str | None = None
        self.hanging_up = False


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
        self.input_wav = input_wav or (Path(app_settings.input_wav) if app_settings.input_wav else None)
        self.settings_path = settings_path
        self.platform: Any = None
        self.call: Call | None = None
        self.ready = False
        self.review_windows: list[Any] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._health_task: asyncio.Task[None] | None = None
        self._restart_after_call = False
        self._recorder_being_set_up: ConversationRecorder | None = None
        bus.subscribe(self._on_bus_event)  # recorder and meter: not GUI, they want every event at once
        w = window
        w.call_requested.connect(lambda customer, agent: self._spawn(self.start_call(customer, agent)))
        w.hangup_requested.connect(lambda: self._spawn(self.hangup()))
        w.text_submitted.connect(lambda text: self._spawn(self.send_text(text)))
        w.mute_changed.connect(self.set_muted)
        w.push_to_talk_changed.connect(self.set_push_to_talk)
        w.talk_pressed.connect(self.set_talking)
        w.input_wav_chosen.connect(self.set_input_wav)
        w.export_requested.connect(self.export)
        w.open_requested.connect(self.open_conversation)
        w.settings_requested.connect(self.edit_settings)
        w.conversations_dir = conversations_dir()
        w.ptt_box.setChecked(app_settings.push_to_talk)
        w.set_input_source(self.input_name())
        w.set_call_state("unavailable")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._log_crash)
        return task

    def _log_crash(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("app task failed", exc_info=exc)
            self.window.show_failure("Unexpected error", f"{type(exc).__name__}: {exc}",
                                     "See the event log; the app keeps running.")

    def input_name(self) -> str:
        if self.input_wav is not None:
            return f"WAV {self.input_wav.name}"
        return f"microphone {self.app_settings.input_device or '(default)'}"

    # --- the platform ---------------------------------------------------------------------------

    async def start_platform(self) -> bool:
        """Serve at once, load engines in the background; False (explained) if it cannot start."""
        self.window.engine_label.setText("Starting the platform…")
        # Imported here, off the window's critical path: the window is already on screen.
        try:
            platform_type = await asyncio.to_thread(_load_platform)
        except ImportError as exc:
            self.window.engine_label.setText("The platform is not installed correctly")
            self.window.progress.hide()
            self.window.show_failure("The platform could not be loaded", f"Python could not import it: {exc}.",
                                     "Reinstall with `make setup`; the app still opens saved conversations.")
            return False
        self.platform = platform_type(self.config, bus=self.bus)
        self._spawn(asyncio.to_thread(_load_audio))
        try:
            await self.platform.start(wait_for_engines=False)
        except platform_core.PlatformError as exc:
            self.window.engine_label.setText("The platform is not running")
            self.window.progress.hide()
            self.window.show_failure("The platform could not start", exc.message, exc.hint)
            self.platform = None
            return False
        self.window.set_platform_url(self.platform.gateway_url)
        for agent in self.platform.gateway.agents():  # agents that connected before we subscribed
            self.session.agents.connected(agent.connection_id, agent.customer_id, agent.remote, time.monotonic())
        self._spawn(self._await_engines(platform_core.PlatformError))
        return True

    def platform_settings(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The settings the running platform read once, at start: its engines and its server.
        (The voice loop's thresholds are read by each new call, so they need no restart.)"""
        return dataclasses.asdict(self.config.engines), dataclasses.asdict(self.config.server)

    async def restart_platform(self) -> None:
        """Apply new engine or server settings: the platform stops and starts again with them, engines
        reload with visible progress, and agents reconnect. A call in progress finishes first."""
        if self.call is not None:
            self._restart_after_call = True
            self._notice("settings", "Settings saved", "the new engine and server settings apply when this "
                         "call ends", "Hang up to apply them now.")
            return
        self.ready = False
        self.window.set_call_state("unavailable")
        self.window.set_engines_failed(None)
        self.session.engines.clear()  # the new platform reports its own progress
        if self.platform is not None:
            platform, self.platform = self.platform, None
            with contextlib.suppress(Exception):
                await platform.stop()
        await self.start_platform()

    async def _await_engines(self, error_type: type[platform_core.StudioError]) -> None:
        try:
            await self.platform.wait_ready()
        except error_type as exc:
            self.window.set_engines_failed("Engines failed to load: calls are unavailable")
            self.window.show_failure("An engine could not load", exc.message, exc.hint)
            return
        self.ready = True
        self.window.set_ready(f"Ready. Agents connect to {self.platform.gateway_url}")
        if self.call is None:
            self.window.set_call_state("idle")

    async def shutdown(self) -> None:
        await self.hangup()
        if self.platform is not None:
            with contextlib.suppress(Exception):
                await self.platform.stop()
            self.platform = None

    # --- calls ----------------------------------------------------------------------------------

    def _api_key_for(self, customer_id: str | None) -> str | None:
        """Calls are routed to the agents of the customer whose API key places them."""
        if customer_id is None:
            return None
        for key, customer in self.config.server.customers().items():
            if customer == customer_id:
                return key
        return None

    def _notice(self, where: str, title: str, message: str, hint: str) -> None:
        """A non-blocking explanation: in the status bar now, and in the event log and the call's recording
        for later (the status bar shows one message at a time, for a few seconds)."""
        self.window.show_failure(title, message, hint, modal=False)
        call = self.call
        event = ErrorOccurred(where=where, message=f"{title}: {message}", hint=hint,
                              conversation_id=call.conversation_id if call else None)
        self.session.apply(event)
        recorder = call.recorder if call is not None else self._recorder_being_set_up
        if recorder is not None:
            recorder.on_event(event)

    def _open_source(self) -> GatedSource | None:
        from app.audio_io import AudioDeviceError, GatedSource, MicrophoneTrack

        try:
            if self.input_wav is not None:
                return GatedSource.from_wav(self.input_wav, lead_in_s=1.0)
            return MicrophoneTrack(self.app_settings.input_device or None, on_failure=self._mic_failed)
        except AudioDeviceError as exc:
            self._notice("microphone", "No microphone: text mode", exc.message, exc.hint)
            self.window.set_input_source("text only (no microphone)")
            return None

    def _open_speaker(self) -> SpeakerOutput | None:
        from app.audio_io import AudioDeviceError, SpeakerOutput

        try:
            return SpeakerOutput(self.app_settings.output_device or None)
        except AudioDeviceError as exc:
            self._notice("speaker", "No speaker: the answer is shown as text only", exc.message, exc.hint)
            return None

    def _mic_failed(self, exc: AudioDeviceError) -> None:
        self._notice("microphone", "Microphone lost", exc.message, exc.hint)
        self.window.set_input_source("text only (microphone lost)")

    async def start_call(self, customer_id: str | None, agent_id: str | None = None) -> None:
        """Call the agents of `customer_id` (None: the plain assistant); `agent_id` picks one agent class."""
        if self.call is not None:
            return
        if self.platform is None or not self.ready:
            self.window.show_failure("Not ready", "The platform is still loading its engines, or failed to.",
                                     "Wait for 'Ready' in the status bar, or read the error shown before.")
            return
        from platform_core import CallClient, CallError

        self.window.clear_notices()
        self.window.set_call_state("connecting")
        # The recorder first: a device that fails to open is part of this call's record.
        recorder = self._recorder_being_set_up = ConversationRecorder(agent_id=agent_id or customer_id,
                                                                      input_name=self.input_name())
        try:
            source = self._open_source()
            speaker = self._open_speaker()
        finally:
            self._recorder_being_set_up = None
        loop = asyncio.get_running_loop()

        def report(turn_id: int, seconds: float) -> None:  # speaker thread -> loop thread
            cid = self.call.conversation_id if self.call else None
            if cid:
                loop.call_soon_threadsafe(self.bus.publish, MetricMeasured(
                    conversation_id=cid, turn_id=turn_id, name="mouth_to_ear", value=seconds))

        meter = MouthToEarMeter(report)
        if source is not None:
            source.push_to_talk = self.window.ptt_box.isChecked()
            source.muted = self.window.mute_box.isChecked()
            source.on_frame += [meter.on_mic, recorder.on_caller_audio]
        if speaker is not None:
            speaker.on_played.append(meter.on_speaker)

        def on_agent_audio(samples: np.ndarray) -> None:
            recorder.on_agent_audio(samples, time.monotonic())
            if self.call is not None and self.call.speaker is not None:
                self.call.speaker.write(samples)

        client = CallClient(self.platform.url, agent_id=agent_id, api_key=self._api_key_for(customer_id),
                            source=source, on_agent_audio=on_agent_audio, feed="no-levels")
        self.call = call = Call(client, source, speaker, recorder, meter, customer_id)
        try:
            call.conversation_id = await client.connect()
        except CallError as exc:
            self.window.show_failure("The call could not start", exc.message, exc.hint)
            await self._end_call()
            return
        recorder.meta["conversation_id"] = call.conversation_id
        self.window.set_call_state("active")
        self._spawn(self._watch_call(call))
        self._health_task = self._spawn(self._watch_devices(call))

    async def _watch_call(self, call: Call) -> None:
        reason = await call.client.wait_ended()
        if self.call is call and not call.hanging_up:
            self._notice("call", "The call ended", f"The platform ended the call: {reason}.",
                         "Press Call to start a new one.")
            await self._end_call()

    async def _watch_devices(self, call: Call) -> None:
        """A speaker unplugged mid-call: keep the call (text and events), stop playback, say so."""
        while self.call is call:
            await asyncio.sleep(0.5)
            if call.speaker is not None and not call.speaker.alive:
                call.speaker.close()
                call.speaker = None
                self._notice(
                    "speaker", "Speaker lost",
                    "The speaker stopped playing audio (unplugged, or taken by another program).",
                    "The call goes on: answers still appear in the transcript. Pick another speaker in Settings"
                    " and call again to hear them.")

    async def hangup(self) -> None:
        call = self.call
        if call is None:
            return
        call.hanging_up = True
        self.window.set_call_state("ending")
        with contextlib.suppress(Exception):
            await call.client.hangup()
        await self._end_call()

    async def _end_call(self) -> None:
        call, self.call = self.call, None
        if call is None:
            return
        if self._health_task is not None:
            self._health_task.cancel()
        with contextlib.suppress(Exception):
            await call.client.close()
        if call.source is not None:
            call.source.stop()
        if call.speaker is not None:
            call.speaker.close()
        folder = call.recorder.close()
        self.window.statusBar().showMessage(f"Conversation saved to {folder}", 15000)
        self.last_recording = folder
        self.window.set_call_state("idle" if self.ready else "unavailable")
        if self._restart_after_call:
            self._restart_after_call = False
            self._spawn(self.restart_platform())

    async def send_text(self, text: str) -> None:
        if self.call is None:
            self.window.show_failure("No call", "A typed turn goes to the agent of a running call.",
                                     "Press Call first, then type.", modal=False)
            return
        from platform_core import CallError

        try:
            await self.call.client.send_text(text)
        except CallError as exc:
            self.window.show_failure("The turn was not sent", exc.message, exc.hint, modal=False)

    # --- microphone options ---------------------------------------------------------------------

    def set_muted(self, muted: bool) -> None:
        if self.call and self.call.source:
            self.call.source.muted = muted

    def set_push_to_talk(self, enabled: bool) -> None:
        self.app_settings.push_to_talk = enabled
        if self.call and self.call.source:
            self.call.source.push_to_talk = enabled

    def set_talking(self, talking: bool) -> None:
        if self.call and self.call.source:
            self.call.source.talking = talking

    def set_input_wav(self, path: Path | None) -> None:
        self.input_wav = path
        self.app_settings.input_wav = str(path) if path else ""
        self.window.set_input_source(self.input_name() + (" (from the next call)" if self.call else ""))

    # --- events ---------------------------------------------------------------------------------

    def _on_bus_event(self, event: Event) -> None:
        call = self.call
        if call is not None:
            call.recorder.on_event(event)
            if isinstance(event, TurnStarted) and event.conversation_id == call.conversation_id:
                call.meter.on_turn_started(event.turn_id, time.monotonic())
        if isinstance(event, AgentDisconnected):
            self._agent_disconnected(event)
        elif isinstance(event, AgentConnected):
            self.window.statusBar().showMessage(f"Agent {event.customer_id} connected", 5000)
        elif isinstance(event, ErrorOccurred) and event.where != "engines":  # engines: shown by _await_engines
            self.window.show_failure(f"Problem in {event.where}", event.message, event.hint, modal=False)
        elif isinstance(event, ConversationStateChanged) and call and event.conversation_id == call.conversation_id:
            self.window.call_label.setText(f"call: {event.state}")

    def _agent_disconnected(self, event: AgentDisconnected) -> None:
        message = f"The agent {event.customer_id} disconnected ({event.reason or 'no reason given'})."
        call = self.call
        if call is None or call.customer_id != event.customer_id:
            self.window.statusBar().showMessage(message, 15000)
            return
        remaining = self.platform.gateway.agents() if self.platform is not None else []
        if any(a.customer_id == event.customer_id for a in remaining):
            hint = "Another instance of the agent is still connected and serves the call."
        else:
            hint = ("The call goes on without the agent's tools (the plain assistant answers). Restart the agent:"
                    " it picks running calls up again.")
        self._notice("agent", "Agent disconnected", message, hint)

    # --- files and settings ---------------------------------------------------------------------

    def export(self, path: Path, fmt: str) -> None:
        try:
            export_metrics(self.session, path, fmt)
        except OSError as exc:
            self.window.show_failure("Export failed", f"{path} could not be written: {exc.strerror or exc}.",
                                     "Choose a folder you can write to.")
            return
        self.window.statusBar().showMessage(f"Metrics exported to {path}", 10000)

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
                self._spawn(self.restart_platform())
            if self.app_settings.input_wav:
                self.set_input_wav(Path(self.app_settings.input_wav))
            else:
                self.set_input_wav(None)

    def save_settings(self) -> None:
        try:
            save_settings(self.config, self.settings_path)
            save_app_settings(self.app_settings,
                              self.settings_path.with_name("app.json") if self.settings_path else None)
        except OSError as exc:
            self.window.show_failure("Settings not saved", f"They could not be written: {exc}.",
                                     "Check that your config folder is writable.")
