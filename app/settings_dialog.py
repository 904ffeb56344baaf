"""Settings: engines and models, voice, VAD and endpointing thresholds, port, API keys, devices.

The dialog edits copies; `apply()` writes them back into the given objects only on OK, and the
caller persists them (platform settings with `save_settings`, desktop ones with `save_app_settings`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.app_settings import AppSettings
from platform_core import PlatformConfig

DeviceLister = Callable[[bool], tuple[list[str], list[str]]]  # rescan -> (inputs, outputs)


def _spin(value: float, lo: float, hi: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setValue(value)
    return box


_TURN_DETECTION = [("by meaning (Smart Turn), then silence", "smart-turn"), ("by silence only", "silence")]


class SettingsDialog(QDialog):
    def __init__(
        self,
        config: PlatformConfig,
        app_settings: AppSettings,
        list_devices: DeviceLister | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.config = config
        self.app_settings = app_settings
        self._list_devices = list_devices
        c = copy.deepcopy(config)
        tabs = QTabWidget()
        tabs.addTab(self._engines_tab(c), "Engines and models")
        tabs.addTab(self._voice_tab(c), "Voice loop")
        tabs.addTab(self._server_tab(c), "Server and keys")
        tabs.addTab(self._devices_tab(app_settings), "Audio devices")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        restart_note = QLabel(
            "New engine, model, port or API key settings restart the platform when you"
            " press OK: the engines reload and agents reconnect (after the call, if one"
            " is in progress). Voice-loop settings apply from the next call."
        )
        restart_note.setWordWrap(True)
        layout.addWidget(restart_note)
        layout.addWidget(buttons)

    def _engines_tab(self, c: PlatformConfig) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        self.stt_model = QLineEdit(c.engines.stt_model)
        self.stt_threads = QSpinBox()
        self.stt_threads.setRange(0, 64)
        self.stt_threads.setSpecialValueText("auto")  # 0: see engine_threads
        self.stt_threads.setValue(c.engines.stt_threads)
        self.take_turns = QCheckBox(
            "Engines take turns on the CPU (the LLM pauses while speech is transcribed or spoken)"
        )
        self.take_turns.setChecked(c.engines.take_turns)
        self.llm = QComboBox()
        self.llm.addItems(["embedded", "ollama", "openai"])
        self.llm.setCurrentText(c.engines.llm)
        self.llm_model = QLineEdit(c.engines.llm_model)
        self.llm_url = QLineEdit(c.engines.llm_url)
        self.llm_url.setPlaceholderText("for ollama / OpenAI-compatible servers")
        self.llm_api_key = QLineEdit(c.engines.llm_api_key)
        self.llm_api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.tts_voice = QLineEdit(c.engines.tts_voice)
        form.addRow("Speech-to-text model", self.stt_model)
        form.addRow("Speech-to-text threads", self.stt_threads)
        form.addRow("", self.take_turns)
        form.addRow("Language model engine", self.llm)
        form.addRow("Language model", self.llm_model)
        form.addRow("Language model server URL", self.llm_url)
        form.addRow("Language model API key", self.llm_api_key)
        form.addRow("Voice (text-to-speech)", self.tts_voice)
        return w

    def _voice_tab(self, c: PlatformConfig) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        v = c.voice
        self.vad_threshold = _spin(v.vad_threshold, 0.05, 0.95, 0.05)
        self.turn_detection = QComboBox()
        for label, mode in _TURN_DETECTION:
            self.turn_detection.addItem(label, mode)
        self.turn_detection.setCurrentIndex(max(0, self.turn_detection.findData(v.turn_detection)))
        self.turn_detection.setToolTip(
            "By meaning: the Smart Turn model hears whether the sentence is finished and waits (up to "
            f"{v.turn_max_wait_s:.0f} s) through a pause mid-sentence. By silence: every pause of the length "
            "below ends the turn."
        )
        self.endpoint_silence = _spin(v.endpoint_silence_s, 0.1, 3.0, 0.05)
        self.min_speech = _spin(v.min_speech_s, 0.0, 2.0, 0.05)
        self.barge_in = _spin(v.barge_in_speech_s, 0.02, 1.0, 0.02)
        self.interrupt_speech = _spin(v.interrupt_speech_s, 0.1, 3.0, 0.05)
        self.interrupt_words = QSpinBox()
        self.interrupt_words.setRange(0, 10)
        self.interrupt_words.setValue(v.interrupt_min_words)
        self.interrupt_words.setSpecialValueText("off (duration only)")
        self.resume_after = _spin(v.false_interruption_timeout_s, 0.5, 10.0, 0.5)
        self.max_turn = _spin(v.max_turn_s, 5.0, 120.0, 5.0, 0)
        form.addRow("VAD speech threshold (0-1)", self.vad_threshold)
        form.addRow("End of turn", self.turn_detection)
        form.addRow("End of turn after silence (s, by silence only)", self.endpoint_silence)
        form.addRow("Ignore speech shorter than (s)", self.min_speech)
        form.addRow("Pause the agent after speech of (s)", self.barge_in)
        form.addRow("Interrupt the agent after speech of (s)", self.interrupt_speech)
        form.addRow("...and at least this many words", self.interrupt_words)
        form.addRow("Undecided: resume the agent after (s)", self.resume_after)
        form.addRow("Longest turn (s)", self.max_turn)
        self.system_prompt = QLineEdit(c.default_agent.system_prompt)
        form.addRow("Plain assistant's instructions", self.system_prompt)
        return w

    def _server_tab(self, c: PlatformConfig) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(c.server.port)
        self.api_key = QLineEdit(c.server.api_key)
        self.api_keys = QLineEdit(", ".join(f"{k}={v}" for k, v in c.server.api_keys.items()))
        self.api_keys.setPlaceholderText("key=customer, key2=customer2 (empty: the key above is 'default')")
        self.tool_timeout = _spin(c.server.tool_timeout_s, 1.0, 600.0, 1.0, 0)
        form.addRow("Port for agents and callers", self.port)
        form.addRow("API key", self.api_key)
        form.addRow("More API keys", self.api_keys)
        form.addRow("Tool call timeout (s)", self.tool_timeout)
        a = self.app_settings
        self.remote_url = QLineEdit(a.remote_url)
        self.remote_url.setPlaceholderText("empty: this computer; else http://host:port of a platform or front door")
        self.remote_api_key = QLineEdit(a.remote_api_key)
        self.remote_api_key.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Place calls on", self.remote_url)
        form.addRow("...with the API key", self.remote_api_key)
        return w

    def _devices_tab(self, s: AppSettings) -> QWidget:
        w = QWidget()
        box = QGroupBox("Devices")
        form = QFormLayout(box)
        self.input_device = QComboBox()
        self.output_device = QComboBox()
        for combo in (self.input_device, self.output_device):
            combo.setEditable(True)
        self._fill_devices(rescan=False)
        self.input_device.setCurrentText(s.input_device)
        self.output_device.setCurrentText(s.output_device)
        rescan = QPushButton("Rescan devices")
        rescan.clicked.connect(lambda: self._fill_devices(rescan=True))
        self.input_wav = QLineEdit(s.input_wav)
        self.input_wav.setPlaceholderText("a WAV file to use instead of the microphone")
        self.push_to_talk = QCheckBox("Push to talk")
        self.push_to_talk.setChecked(s.push_to_talk)
        self.echo_cancellation = QCheckBox("Echo cancellation (used only while the speaker is heard)")
        self.echo_cancellation.setToolTip(
            "Removes the agent's own voice from the microphone on laptop speakers. With a headset it finds no"
            " echo within about a second of the agent speaking and leaves the microphone untouched."
        )
        self.echo_cancellation.setChecked(s.echo_cancellation)
        form.addRow("Microphone", self.input_device)
        form.addRow("Speaker", self.output_device)
        form.addRow("", rescan)
        form.addRow("WAV as microphone", self.input_wav)
        form.addRow("", self.push_to_talk)
        form.addRow("", self.echo_cancellation)
        layout = QHBoxLayout(w)
        layout.addWidget(box)
        return w

    def _fill_devices(self, rescan: bool) -> None:
        inputs: list[str] = []
        outputs: list[str] = []
        if self._list_devices is not None:
            try:
                inputs, outputs = self._list_devices(rescan)
            except Exception as exc:  # no PortAudio at all: say so in the list itself
                inputs = outputs = []
                self.setToolTip(f"Audio devices unavailable: {exc}")
        for combo, names in ((self.input_device, inputs), (self.output_device, outputs)):
            current = combo.currentText()
            combo.clear()
            combo.addItem("")  # the system default
            combo.addItems(names)
            combo.setCurrentText(current)

    def apply(self) -> None:
        """Write the edited values into the config and app settings given to the constructor."""
        e, v, s = self.config.engines, self.config.voice, self.config.server
        e.stt_model = self.stt_model.text().strip() or e.stt_model
        e.stt_threads = self.stt_threads.value()
        e.take_turns = self.take_turns.isChecked()
        e.llm = self.llm.currentText()  # type: ignore[assignment]
        e.llm_model = self.llm_model.text().strip() or e.llm_model
        e.llm_url = self.llm_url.text().strip()
        e.llm_api_key = self.llm_api_key.text()
        e.tts_voice = self.tts_voice.text().strip() or e.tts_voice
        v.vad_threshold = self.vad_threshold.value()
        v.turn_detection = self.turn_detection.currentData()
        v.endpoint_silence_s = self.endpoint_silence.value()
        v.min_speech_s = self.min_speech.value()
        v.barge_in_speech_s = self.barge_in.value()
        v.interrupt_speech_s = self.interrupt_speech.value()
        v.interrupt_min_words = self.interrupt_words.value()
        v.false_interruption_timeout_s = self.resume_after.value()
        v.max_turn_s = self.max_turn.value()
        self.config.default_agent.system_prompt = self.system_prompt.text()
        s.port = self.port.value()
        s.api_key = self.api_key.text().strip() or s.api_key
        pairs = [p.split("=", 1) for p in self.api_keys.text().split(",") if "=" in p]
        s.api_keys = {k.strip(): c.strip() for k, c in pairs if k.strip() and c.strip()}
        s.tool_timeout_s = self.tool_timeout.value()
        a = self.app_settings
        a.input_device = self.input_device.currentText().strip()
        a.output_device = self.output_device.currentText().strip()
        a.input_wav = self.input_wav.text().strip()
        a.push_to_talk = self.push_to_talk.isChecked()
        a.echo_cancellation = self.echo_cancellation.isChecked()
        a.remote_url = self.remote_url.text().strip()
        a.remote_api_key = self.remote_api_key.text().strip()
