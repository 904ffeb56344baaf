"""Platform configuration: engines, voice-loop thresholds, agents, server. Plain dataclasses.

`load_settings` / `save_settings` persist them as JSON in the user's config folder; unknown keys
are ignored and missing keys take their defaults, so settings survive upgrades.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from platform_core.files import atomic_file


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "conversimple-studio"


def user_cache_dir() -> Path:
    """Where assembled model files live (override with CONVERSIMPLE_CACHE_DIR)."""
    override = os.environ.get("CONVERSIMPLE_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conversimple-studio"


def user_data_dir() -> Path:
    """Saved conversations and logs (override with CONVERSIMPLE_DATA_DIR)."""
    override = os.environ.get("CONVERSIMPLE_DATA_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "conversimple-studio"


@dataclass
class EngineConfig:
    vad: Literal["silero"] = "silero"
    stt: Literal["whisper_cpp"] = "whisper_cpp"
    stt_model: str = "whisper-tiny.en"  # or "whisper-base", or a path to a ggml .bin file
    stt_threads: int = 0  # 0 = auto (see engine_threads)
    # Encoder context in mel frames/2 (1500 = whisper's full 30 s window). Small values cut STT time
    # about fivefold on short utterances; long utterances get a context that fits them.
    stt_audio_ctx: int = 256
    llm: Literal["embedded", "ollama", "openai"] = "embedded"
    llm_model: str = "qwen2.5-coder-0.5b-instruct"  # manifest id (embedded) or server model name
    llm_url: str = ""  # base URL for ollama / openai-compatible servers
    llm_api_key: str = ""  # for openai-compatible servers
    llm_threads: int = 0  # 0 = auto
    llm_context: int = 2048
    tts: Literal["piper"] = "piper"
    tts_voice: str = "piper-joe"
    tts_threads: int = 0  # 0 = auto
    # The engines take turns on the CPU: the embedded LLM's process is paused while whisper or Piper
    # runs, so each stage on the way to the caller's ear can use every core (see engine_threads).
    take_turns: bool = True
    # Engine threads run this much "nicer" than the event loop (and the GUI sharing it), so audio,
    # WebRTC and repaints get a core first when the engines saturate the machine. 0 turns it off.
    # Measured (app e2e test, worst GUI loop stall): 0 -> 106-169 ms, 10 -> 49-63 ms, 19 -> 40-67 ms;
    # the headless e2e latency did not suffer (p50 1.15 s at 19).
    engine_nice: int = 19


def engine_threads(configured: int, *, take_turns: bool = False) -> int:
    """Threads for one engine: `configured`, or with 0 an automatic count (1 to 4).

    ggml (whisper.cpp, llama.cpp) and ONNX Runtime synchronise their threads at every layer; when
    one of them is descheduled the others wait. Measured on 2 cores with one core kept busy by
    another process: llama.cpp decoded 11 tok/s on 1 thread and 1.6 tok/s on 2. So engines that may
    run at the same time leave a core free (cores - 1); engines that take turns (`take_turns`) use
    every core: quiet, 2 threads decode 18-25 tok/s against 10-14 on 1.
    """
    if configured > 0:
        return configured
    cores = os.cpu_count() or 2
    return max(1, min(4, cores if take_turns else cores - 1))


@dataclass
class VoiceLoopConfig:
    vad_threshold: float = 0.5
    # Silence after speech that ends the caller's turn.
    endpoint_silence_s: float = 0.3
    # Silence after which transcription starts speculatively (kept if the turn ends with no more speech).
    pause_s: float = 0.1
    # While the caller speaks, the words so far are shown every this often (0 = never). Such a
    # transcription gives way to the turn's own (at most ~0.2 s, whisper's encoder) if they collide.
    partial_every_s: float = 1.2
    # Speech shorter than this is ignored (clicks, breaths).
    min_speech_s: float = 0.15
    # Caller speech that interrupts the agent (must stay well under the 200 ms barge-in budget).
    barge_in_speech_s: float = 0.064
    max_turn_s: float = 30.0
    # Tool decisions per turn. Each decision is an LLM pass (0.7-1.5 s on 2 cores), so by default the
    # agent calls at most one tool and then answers; 2 or more allows chains (result -> next call).
    max_tool_steps: int = 1
    tool_filler_after_s: float = 1.0
    max_reply_tokens: int = 160


@dataclass
class AgentProfile:
    system_prompt: str = (
        "You are a helpful voice assistant. Answer in one or two short spoken sentences. No lists, no markdown."
    )
    greeting: str = ""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    # API key -> customer id. An empty mapping means the one key in `api_key` maps to "default".
    api_keys: dict[str, str] = field(default_factory=dict)
    api_key: str = "dev-key"
    tool_timeout_s: float = 30.0

    def customers(self) -> dict[str, str]:
        return dict(self.api_keys) if self.api_keys else {self.api_key: "default"}


@dataclass
class PlatformConfig:
    engines: EngineConfig = field(default_factory=EngineConfig)
    voice: VoiceLoopConfig = field(default_factory=VoiceLoopConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    agents: dict[str, AgentProfile] = field(default_factory=dict)
    default_agent: AgentProfile = field(default_factory=AgentProfile)

    def profile_for(self, agent_id: str | None) -> AgentProfile:
        if agent_id and agent_id in self.agents:
            return self.agents[agent_id]
        return self.default_agent


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass `cls` from `data`, ignoring unknown keys and recursing into nested dataclasses."""
    kwargs: dict[str, Any] = {}
    hints = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    for name, value in data.items():
        if name not in hints:
            continue
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            kwargs[name] = _from_dict(type(current), value)
        elif name == "agents" and isinstance(value, dict):
            kwargs[name] = {k: _from_dict(AgentProfile, v) for k, v in value.items() if isinstance(v, dict)}
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> PlatformConfig:
    result: PlatformConfig = _from_dict(PlatformConfig, data)
    return result


def settings_path() -> Path:
    return user_config_dir() / "settings.json"


def read_json_settings(path: Path) -> dict[str, Any] | None:
    """The JSON object saved at `path`; None if nothing was saved. A damaged file is moved aside
    (so it is not lost and not overwritten) and ValueError says so."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return data
    except (ValueError, TypeError) as exc:
        backup = path.with_suffix(".damaged.json")
        path.replace(backup)
        raise ValueError(
            f"Settings file {path} could not be read ({exc}); it was moved to {backup} and defaults are used."
        ) from exc


def write_json_atomic(path: Path, data: dict[str, Any]) -> Path:
    """Write atomically, so a crash mid-write never loses the previous file."""
    with atomic_file(path, "w") as fh:
        json.dump(data, fh, indent=2)
    return path


def load_settings(path: Path | None = None) -> PlatformConfig:
    """The saved configuration, or defaults if none was saved yet."""
    data = read_json_settings(path or settings_path())
    try:
        return config_from_dict(data) if data is not None else PlatformConfig()
    except TypeError as exc:  # a value of the wrong shape inside an otherwise valid file
        raise ValueError(f"Settings file {path or settings_path()} has invalid values ({exc}).") from exc


def save_settings(config: PlatformConfig, path: Path | None = None) -> Path:
    return write_json_atomic(path or settings_path(), dataclasses.asdict(config))
