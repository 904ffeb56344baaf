"""Desktop-only settings (devices, push-to-talk, WAV input), persisted beside the platform's settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from platform_core import read_json_settings, user_config_dir, write_json_atomic


@dataclass
class AppSettings:
    input_device: str = ""  # "" = the system default
    output_device: str = ""
    input_wav: str = ""  # a WAV file standing in for the microphone; "" = the microphone
    push_to_talk: bool = False
    # Its output is used only while the speaker is heard in the microphone (app/echo_detector.py), so a
    # headset loses nothing with it on; off, the microphone is never touched.
    echo_cancellation: bool = True
    # Where the app's calls go: "" = the platform this app hosts; else another platform or a cluster's
    # front door (http://host:port), called with remote_api_key (app/call_target.py).
    remote_url: str = ""
    remote_api_key: str = ""
    # 1 (or absent): saved when echo cancellation processed the microphone always and was off by default.
    settings_version: int = 2


def app_settings_path() -> Path:
    return user_config_dir() / "app.json"


def load_app_settings(path: Path | None = None) -> AppSettings:
    """Saved settings, or defaults; unknown keys are ignored and a damaged file is set aside."""
    data = read_json_settings(path or app_settings_path())
    if data is None:
        return AppSettings()
    names = {f.name for f in dataclasses.fields(AppSettings)}
    settings = AppSettings(**{k: v for k, v in data.items() if k in names})
    if data.get("settings_version", 1) < 2:
        # Its "off" was chosen when the canceller also suppressed a caller on a headset, which it no
        # longer does (it stands by where no echo is heard): a speaker-and-microphone laptop needs it on.
        settings.echo_cancellation = True
        settings.settings_version = 2
    return settings


def save_app_settings(settings: AppSettings, path: Path | None = None) -> Path:
    return write_json_atomic(path or app_settings_path(), dataclasses.asdict(settings))
