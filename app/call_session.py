"""The app's call: its client to the platform, the microphone (or WAV file) it sends, the speaker that
plays the agent, the recorder that saves it and the mouth-to-ear meter. One call at a time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.app_settings import AppSettings
from app.call_target import CallTarget, NoCallTarget, call_target, conversation_events, remote_target, served_by
from app.main_window import MainWindow
from app.mouth_to_ear import MouthToEarMeter
from app.platform_lifecycle import PlatformLifecycle
from app.recording import ConversationRecorder
from app.remote_health import RemoteHealthWatch
from app.tasks import BackgroundTasks
from app.viewmodels.session import SessionModel
from platform_core import EventBus, PlatformConfig
from platform_core.events import ErrorOccurred, Event, MetricMeasured, TurnStarted

if TYPE_CHECKING:  # aiortc and av take ~0.5 s to import: not before the window is up
    from app.audio_io import AudioDeviceError, GatedSource, SpeakerOutput
    from app.echo_canceller import EchoCanceller
    from platform_core import CallClient


class Call:
    """One live call: its client, audio ends, recorder and mouth-to-ear meter."""

    def __init__(
        self,
        client: CallClient,
        source: GatedSource | None,
        speaker: SpeakerOutput | None,
        recorder: ConversationRecorder,
        meter: MouthToEarMeter,
        customer_id: str | None = None,
    ) -> None:
        self.client = client
        self.customer_id = customer_id  # whose agents serve the call (None: the plain assistant)
        self.source = source
        self.speaker = speaker
        self.recorder = recorder
        self.meter = meter
        self.echo_canceller: EchoCanceller | None = None
        self.conversation_id: str | None = None
        self.hanging_up = False


class CallSession:
    """Places, runs and ends the call; owns the choice of input (microphone or WAV file)."""

    def __init__(
        self,
        window: MainWindow,
        session: SessionModel,
        bus: EventBus,
        config: PlatformConfig,
        app_settings: AppSettings,
        lifecycle: PlatformLifecycle,
        tasks: BackgroundTasks,
        *,
        input_wav: Path | None,
        on_ended: Callable[[], None],
    ) -> None:
        self.window = window
        self.session = session
        self.bus = bus
        self.config = config
        self.app_settings = app_settings
        self.lifecycle = lifecycle
        self._tasks = tasks
        self._on_ended = on_ended  # after the call is torn down and saved
        self.input_wav = input_wav
        self.call: Call | None = None
        self.last_recording: Path | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._recorder_being_set_up: ConversationRecorder | None = None
        self.remote_health = RemoteHealthWatch(window.set_remote_health)

    # --- the input --------------------------------------------------------------------------------

    def input_name(self) -> str:
        if self.input_wav is not None:
            return f"WAV {self.input_wav.name}"
        return f"microphone {self.app_settings.input_device or '(default)'}"

    def set_input_wav(self, path: Path | None) -> None:
        """The WAV file the next call sends instead of the microphone (None: the microphone again)."""
        self.input_wav = path
        self.app_settings.input_wav = str(path) if path else ""
        self.window.set_input_source(self.input_name() + (" (from the next call)" if self.call else ""))

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

    # --- notices ----------------------------------------------------------------------------------

    def notice(self, where: str, title: str, message: str, hint: str) -> None:
        """A non-blocking explanation: in the status bar now, and in the event log and the call's recording
        for later (the status bar shows one message at a time, for a few seconds)."""
        self.window.show_failure(title, message, hint, modal=False)
        call = self.call
        event = ErrorOccurred(
            where=where,
            message=f"{title}: {message}",
            hint=hint,
            conversation_id=call.conversation_id if call else None,
        )
        self.session.apply(event)
        recorder = call.recorder if call is not None else self._recorder_being_set_up
        if recorder is not None:
            recorder.on_event(event)

    # --- the audio ends ---------------------------------------------------------------------------

    def open_source(self) -> GatedSource | None:
        """What the next call sends: the WAV file or the microphone; None (explained) if neither opens."""
        from app.audio_io import AudioDeviceError, GatedSource, MicrophoneTrack

        try:
            if self.input_wav is not None:
                return GatedSource.from_wav(self.input_wav, lead_in_s=1.0)
            return MicrophoneTrack(self.app_settings.input_device or None, on_failure=self._mic_failed)
        except AudioDeviceError as exc:
            self.notice("microphone", "No microphone: text mode", exc.message, exc.hint)
            self.window.set_input_source("text only (no microphone)")
            return None

    def _open_speaker(self) -> SpeakerOutput | None:
        from app.audio_io import AudioDeviceError, SpeakerOutput

        try:
            return SpeakerOutput(self.app_settings.output_device or None)
        except AudioDeviceError as exc:
            self.notice("speaker", "No speaker: the answer is shown as text only", exc.message, exc.hint)
            return None

    def _mic_failed(self, exc: AudioDeviceError) -> None:
        self.notice("microphone", "Microphone lost", exc.message, exc.hint)
        self.window.set_input_source("text only (microphone lost)")

    def _open_audio(
        self,
        recorder: ConversationRecorder,
        meter: MouthToEarMeter,
    ) -> tuple[GatedSource | None, SpeakerOutput | None]:
        """The call's microphone and speaker, wired to the recorder and the meter."""
        self._recorder_being_set_up = recorder  # a device that fails to open is part of this call's record
        try:
            source = self.open_source()
            speaker = self._open_speaker()
        finally:
            self._recorder_being_set_up = None
        if source is not None:
            source.push_to_talk = self.window.push_to_talk()
            source.muted = self.window.muted()
            source.on_frame += [meter.on_mic, recorder.on_caller_audio]
        if speaker is not None:
            speaker.on_played.append(meter.on_speaker)
        return source, speaker

    def _cancel_echo(self, call: Call) -> None:
        """The speaker becomes the microphone's far end, unless turned off (headset) or the input is a file."""
        from app.audio_io import MicrophoneTrack
        from app.echo_canceller import EchoCanceller

        source, speaker = call.source, call.speaker
        if not isinstance(source, MicrophoneTrack) or speaker is None:
            return self.window.set_echo_status("")
        if not self.app_settings.echo_cancellation:
            return self.window.set_echo_status("Echo cancellation: off")
        try:
            canceller = EchoCanceller()
        except (ImportError, OSError, RuntimeError) as exc:  # its native library missing or refusing
            self.window.set_echo_status("Echo cancellation: unavailable")
            return self.notice(
                "echo", "No echo cancellation", f"It could not start: {exc}.", "Use a headset, or reinstall the app."
            )
        call.echo_canceller = source.echo_canceller = speaker.echo_canceller = canceller
        self.window.set_echo_status("Echo cancellation: on")

    def _show_echo(self, call: Call) -> None:
        canceller = call.echo_canceller
        if canceller is None:
            return
        if canceller.error is not None:
            self.window.set_echo_status("Echo cancellation: failed")
            self.notice("echo", "Echo cancellation stopped", canceller.error, "Use a headset, or call again.")
            call.echo_canceller = None
            return
        self.window.set_echo_status(f"Echo cancellation: {canceller.status}")

    def _mouth_to_ear_meter(self) -> MouthToEarMeter:
        loop = asyncio.get_running_loop()

        def report(turn_id: int, seconds: float) -> None:  # speaker thread -> loop thread
            cid = self.call.conversation_id if self.call else None
            if cid:
                loop.call_soon_threadsafe(
                    self.bus.publish,
                    MetricMeasured(conversation_id=cid, turn_id=turn_id, name="mouth_to_ear", value=seconds),
                )

        return MouthToEarMeter(report)

    # --- the call ---------------------------------------------------------------------------------

    def _api_key_for(self, customer_id: str | None) -> str | None:
        """Calls are routed to the agents of the customer whose API key places them; the plain
        assistant (None) calls with the main key (every call needs one)."""
        for key, customer in self.config.server.customers().items():
            if customer == customer_id:
                return key
        return self.config.server.main_key() or None

    async def start(self, customer_id: str | None, agent_id: str | None = None) -> None:
        """Call the agents of `customer_id` (None: the plain assistant); `agent_id` picks one agent class."""
        if self.call is not None:
            return
        target = self._target(customer_id)
        if target is None:
            return
        from platform_core import CallClient, CallError

        self.window.clear_notices()
        self.window.set_call_state("connecting")
        # The recorder first: a device that fails to open is part of this call's record.
        recorder = ConversationRecorder(agent_id=agent_id or customer_id, input_name=self.input_name())
        meter = self._mouth_to_ear_meter()
        source, speaker = self._open_audio(recorder, meter)

        def on_agent_audio(samples: np.ndarray) -> None:
            recorder.on_agent_audio(samples, time.monotonic())
            if self.call is not None and self.call.speaker is not None:
                self.call.speaker.write(samples)

        client = CallClient(
            target.url,
            agent_id=agent_id,
            api_key=target.api_key,
            source=source,
            on_agent_audio=on_agent_audio,
            on_event=conversation_events(self.bus.publish, lambda: client.conversation_id) if target.remote else None,
            feed="no-levels",
        )
        self.call = call = Call(client, source, speaker, recorder, meter, customer_id)
        self._cancel_echo(call)
        try:
            call.conversation_id = await client.connect()
        except CallError as exc:
            self.window.show_failure("The call could not start", exc.message, exc.hint)
            await self._end()
            return
        recorder.bind(call.conversation_id)
        self.window.set_served_by(served_by(target, client.worker))
        self.session.follow(call.conversation_id)  # the app's own call has the panels, whatever else runs
        self.window.set_call_state("active")
        self._tasks.spawn(self._watch_call(call))
        self._health_task = self._tasks.spawn(self._watch_devices(call))

    def _target(self, customer_id: str | None) -> CallTarget | None:
        """Where the call goes (app/call_target.py); None, explained, when it cannot go anywhere now."""
        platform = self.lifecycle.platform
        local = platform.url if platform is not None and self.lifecycle.ready else None
        s = self.app_settings
        try:
            return call_target(s.remote_url, s.remote_api_key, local, self._api_key_for(customer_id))
        except NoCallTarget as exc:
            self.window.show_failure(exc.title, exc.message, exc.hint)
            return None

    @property
    def can_call(self) -> bool:
        """Whether a call can start now: a remote platform is set, or the app's own is ready."""
        return bool(self.app_settings.remote_url.strip()) or self.lifecycle.ready

    def show_idle(self) -> None:
        """No call: the Call button as the target allows, and where the next call goes if not here."""
        try:
            remote = remote_target(self.app_settings.remote_url, self.app_settings.remote_api_key)
        except ValueError:
            remote = None  # said when Call is pressed
        self.window.set_served_by(f"calls go to {remote.url}" if remote is not None else "")
        self.remote_health.follow(remote.url if remote is not None else None)
        self.window.set_call_state("idle" if self.can_call else "unavailable")

    async def _watch_call(self, call: Call) -> None:
        reason = await call.client.wait_ended()
        if self.call is call and not call.hanging_up:
            self.notice(
                "call", "The call ended", f"The platform ended the call: {reason}.", "Press Call to start a new one."
            )
            await self._end()

    async def _watch_devices(self, call: Call) -> None:
        """A speaker unplugged mid-call: keep the call (text and events), stop playback, say so."""
        while self.call is call:
            await asyncio.sleep(0.5)
            self._show_echo(call)
            if call.speaker is not None and not call.speaker.alive:
                call.speaker.close()
                call.speaker = None
                self.notice(
                    "speaker",
                    "Speaker lost",
                    "The speaker stopped playing audio (unplugged, or taken by another program).",
                    "The call goes on: answers still appear in the transcript. Pick another speaker in Settings"
                    " and call again to hear them.",
                )

    async def hangup(self) -> None:
        call = self.call
        if call is None:
            return
        call.hanging_up = True
        self.window.set_call_state("ending")
        with contextlib.suppress(Exception):
            await call.client.hangup()
        await self._end()

    async def _end(self) -> None:
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
        self.window.set_echo_status("")
        folder = call.recorder.close()
        self.window.show_status(f"Conversation saved to {folder}", 15000)
        self.last_recording = folder
        self.show_idle()
        self._on_ended()

    async def send_text(self, text: str) -> None:
        if self.call is None:
            self.window.show_failure(
                "No call",
                "A typed turn goes to the agent of a running call.",
                "Press Call first, then type.",
                modal=False,
            )
            return
        from platform_core import CallError

        try:
            await self.call.client.send_text(text)
        except CallError as exc:
            self.window.show_failure("The turn was not sent", exc.message, exc.hint, modal=False)

    def on_event(self, event: Event) -> None:
        """Every bus event, at once (not through Qt): the recorder keeps it, the meter times turns by it."""
        call = self.call
        if call is not None:
            call.recorder.on_event(event)
            if isinstance(event, TurnStarted) and event.conversation_id == call.conversation_id:
                call.meter.on_turn_started(event.turn_id, time.monotonic())
