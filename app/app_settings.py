"""Desktop-only settings (devices, push-to-talk, WAV input), persisted beside the platform's settings."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from platform_core.config import user_config_dir


@dataclass
class AppSettings:
    input_device: str = ""  # "" = the system default
    output_device: str = ""
    input_wav: str = ""  # a WAV file standing in for the microphone; "" = the microphone
    push_to_talk: bool = False


def app_settings_path() -> Path:
    return user_config_dir() / "app.json"


def load_app_settings(path: Path | None = None) -> AppSettings:
    """Saved settings, or defaults; unknown keys are ignored and a damaged file is set aside."""
    path = path or app_settings_path()
    if not path.exists():
        return AppSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        names = {f.name for f in dataclasses.fields(AppSettings)}
        return AppSettings(**{k: v for k, v in data.items() if k in names})
    except (ValueError, TypeError, AttributeError) as exc:
        backup = path.with_suffix(".damaged.json")
        path.replace(backup)
        raise ValueError(f"{path} could not be read ({exc}); it was moved to {backup}, defaults are used.") from exc


def save_app_settings(settings: AppSettings, path: Path | None = None) -> Path:
    path = path or app_settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".app-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dataclasses.asdict(settings), fh, indent=2)
    os.replace(tmp, path)
    return path
