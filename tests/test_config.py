"""Settings persist, survive upgrades (unknown and missing keys) and are never lost when damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from platform_core.config import PlatformConfig, engine_threads, load_settings, save_settings, saved_api_key


def test_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    config = PlatformConfig()
    config.engines.llm = "ollama"
    config.voice.endpoint_silence_s = 0.5
    config.server.api_keys = {"k1": "acme"}
    config.agents["weather"] = type(config.default_agent)(system_prompt="Weather bot.", greeting="Hi!")
    path = save_settings(config, tmp_path / "settings.json")
    assert load_settings(path) == config


def test_unknown_keys_are_ignored_and_missing_ones_default(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"engines": {"llm": "openai", "from_the_future": 1}, "obsolete": True}))
    config = load_settings(path)
    assert config.engines.llm == "openai"
    assert config.voice == PlatformConfig().voice


def test_a_damaged_file_is_kept_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="moved to"):
        load_settings(path)
    assert (tmp_path / "settings.damaged.json").read_text() == "{not json"
    again = load_settings(path)  # the next start uses defaults (and a new install key)
    assert again.engines == PlatformConfig().engines and again.voice == PlatformConfig().voice


def test_a_fresh_install_gets_a_random_key_that_stays(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    first = load_settings(path)
    assert len(first.server.api_key) >= 16 and first.server.api_key != "dev-key"
    assert json.loads(path.read_text()) == {"server": {"api_key": first.server.api_key}}  # only the key
    assert load_settings(path).server.api_key == first.server.api_key == saved_api_key(path)
    assert load_settings(tmp_path / "other.json").server.api_key != first.server.api_key


def test_the_old_published_default_key_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"server": {"api_key": "dev-key", "port": 9000}}))
    config = load_settings(path)
    assert config.server.api_key != "dev-key" and config.server.port == 9000
    assert json.loads(path.read_text())["server"] == {"api_key": config.server.api_key, "port": 9000}


def test_engine_threads_leave_a_core_free() -> None:
    assert engine_threads(3) == 3
    assert engine_threads(0) == max(1, min(4, (os.cpu_count() or 2) - 1))


def test_a_new_api_key_can_be_passed_on_a_command_line() -> None:
    # A key that starts with "-" is read by `--api-key KEY` as an option (it failed a CI run once).
    from platform_core.config import new_api_key

    keys = {new_api_key() for _ in range(2000)}
    assert len(keys) == 2000
    assert all(len(k) >= 32 and not k.startswith("-") and k.isalnum() for k in keys)
