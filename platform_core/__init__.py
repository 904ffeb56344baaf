"""Conversimple platform core: the public API that the desktop app (and any other host) builds on.

The rule for `app/` (enforced by tests/test_architecture.py):

    app/ may import `platform_core` (only the names in `__all__` below) and `platform_core.events`
    (the typed events of the bus); no other `platform_core.*` module. app/widgets/ may import
    `platform_core.events` only: widgets show view models and events, never engines or protocols.

Everything else (engines, gateway, transport, pipeline, server, cli) is internal and may change.

`import platform_core` is cheap: the names are loaded on first use (PEP 562 `__getattr__`), so the app's
window can appear before aiortc, numpy and the engines are imported, and a child process that runs one
submodule (the llama.cpp server) pays for nothing else. PyInstaller cannot follow these lazy imports:
pyinstaller.spec lists `collect_submodules("platform_core")` in its hidden imports.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # not `from typing import ...`: typing alone costs ~4 ms to import
if TYPE_CHECKING:
    from typing import Any

    from platform_core import events
    from platform_core.audio import FRAME_SAMPLES, STT_RATE, WEBRTC_RATE, is_audible
    from platform_core.audio_files import AudioFileError, WavWriter, read_audio, write_wav
    from platform_core.bus import EventBus, EventStream
    from platform_core.calls import place_call
    from platform_core.config import (
        AgentProfile,
        EngineConfig,
        PlatformConfig,
        ServerConfig,
        VoiceLoopConfig,
        load_settings,
        read_json_settings,
        save_settings,
        settings_path,
        user_cache_dir,
        user_config_dir,
        user_data_dir,
        write_json_atomic,
    )
    from platform_core.engines.llm.llama_server import main as run_llm_server
    from platform_core.errors import StudioError
    from platform_core.files import write_text_atomic
    from platform_core.models import ModelError, ensure_model, load_manifest, prepare_models
    from platform_core.platform import Platform, PlatformError
    from platform_core.qa.command import main as run_qa
    from platform_core.resources import resource_path
    from platform_core.transport.client import CallClient, CallError
    from platform_core.transport.wav_source import PacedAudioTrack

# public name -> (module, attribute in it; None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    # the one error type: every explained failure (`message`, `hint`) derives from it
    "StudioError": ("platform_core.errors", "StudioError"),
    # the platform in this process
    "Platform": ("platform_core.platform", "Platform"),
    "PlatformError": ("platform_core.platform", "PlatformError"),
    # configuration (plain dataclasses) and settings files
    "PlatformConfig": ("platform_core.config", "PlatformConfig"),
    "EngineConfig": ("platform_core.config", "EngineConfig"),
    "VoiceLoopConfig": ("platform_core.config", "VoiceLoopConfig"),
    "ServerConfig": ("platform_core.config", "ServerConfig"),
    "AgentProfile": ("platform_core.config", "AgentProfile"),
    "load_settings": ("platform_core.config", "load_settings"),
    "save_settings": ("platform_core.config", "save_settings"),
    "settings_path": ("platform_core.config", "settings_path"),
    "read_json_settings": ("platform_core.config", "read_json_settings"),
    "write_json_atomic": ("platform_core.config", "write_json_atomic"),
    "user_config_dir": ("platform_core.config", "user_config_dir"),
    "user_cache_dir": ("platform_core.config", "user_cache_dir"),
    "user_data_dir": ("platform_core.config", "user_data_dir"),
    # the event bus and its events
    "EventBus": ("platform_core.bus", "EventBus"),
    "EventStream": ("platform_core.bus", "EventStream"),
    "events": ("platform_core.events", None),
    # calls: the WebRTC client (the app's local peer) and one scripted call (the self-test)
    "CallClient": ("platform_core.transport.client", "CallClient"),
    "CallError": ("platform_core.transport.client", "CallError"),
    "place_call": ("platform_core.calls", "place_call"),
    # audio: the format the platform exchanges (48 kHz mono int16, 20 ms frames), files, the paced track
    "WEBRTC_RATE": ("platform_core.audio", "WEBRTC_RATE"),
    "FRAME_SAMPLES": ("platform_core.audio", "FRAME_SAMPLES"),
    "STT_RATE": ("platform_core.audio", "STT_RATE"),
    "is_audible": ("platform_core.audio", "is_audible"),
    "AudioFileError": ("platform_core.audio_files", "AudioFileError"),
    "read_audio": ("platform_core.audio_files", "read_audio"),
    "write_wav": ("platform_core.audio_files", "write_wav"),
    "WavWriter": ("platform_core.audio_files", "WavWriter"),
    "write_text_atomic": ("platform_core.files", "write_text_atomic"),
    "PacedAudioTrack": ("platform_core.transport.wav_source", "PacedAudioTrack"),
    # models and bundled resources (first run, self-test)
    "ensure_model": ("platform_core.models", "ensure_model"),
    "prepare_models": ("platform_core.models", "prepare_models"),
    "load_manifest": ("platform_core.models", "load_manifest"),
    "ModelError": ("platform_core.models", "ModelError"),
    "resource_path": ("platform_core.resources", "resource_path"),
    # QA runs: the packaged app's `conversimple-studio test PATH...` (docs/qa.md)
    "run_qa": ("platform_core.qa.command", "main"),
    # the packaged app's `--run-llm-server` child process (llama.cpp, see engines/llm/llama_server.py)
    "run_llm_server": ("platform_core.engines.llm.llama_server", "main"),
}

__all__ = [
    "FRAME_SAMPLES",
    "STT_RATE",
    "WEBRTC_RATE",
    "AgentProfile",
    "AudioFileError",
    "CallClient",
    "CallError",
    "EngineConfig",
    "EventBus",
    "EventStream",
    "ModelError",
    "PacedAudioTrack",
    "Platform",
    "PlatformConfig",
    "PlatformError",
    "ServerConfig",
    "StudioError",
    "VoiceLoopConfig",
    "WavWriter",
    "ensure_model",
    "events",
    "is_audible",
    "load_manifest",
    "load_settings",
    "place_call",
    "prepare_models",
    "read_audio",
    "read_json_settings",
    "resource_path",
    "run_llm_server",
    "run_qa",
    "save_settings",
    "settings_path",
    "user_cache_dir",
    "user_config_dir",
    "user_data_dir",
    "write_json_atomic",
    "write_text_atomic",
    "write_wav",
]


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise accept any attribute of the module

    def __getattr__(name: str) -> Any:
        """Import a public name on first use and cache it in this module (PEP 562)."""
        try:
            module_name, attribute = _LAZY[name]
        except KeyError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
