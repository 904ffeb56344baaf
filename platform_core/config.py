"""Platform configuration: engines, voice-loop thresholds, agents, server. Plain dataclasses.

`load_settings` / `save_settings` persist them as JSON in the user's config folder; unknown keys
are ignored and missing keys take their defaults, so settings survive upgrades.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
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
    llm_context: int = 2048  # tokens per LLM slot
    # Requests the embedded llama.cpp serves at once (each slot gets llm_context tokens). More wait in
    # the platform's queue, up to llm_queue_wait_s, then the turn gets a spoken "busy" answer. A turn
    # waits as long for an embedded llama.cpp that is restarting, then gets the apology.
    llm_parallel: int = 1
    llm_queue_wait_s: float = 20.0
    # llama.cpp slots beyond llm_parallel, only for requests that give way to callers: the prompt
    # warm-ups and the reply drafted beside the tool choice (pipeline/draft.py). Never a second
    # caller's: two callers decoding at once were both slower on 2 cores (docs/engines.md).
    llm_spare_slots: int = 1
    # Draft the reply on the spare slot while the tool choice runs (pipeline/draft.py). Off: on the
    # 2-core machine it saved nothing, both passes decoding together took as long as one after the
    # other (bench/agent_tax.py, docs/engines.md). Worth trying where the LLM has cores to spare.
    llm_draft_reply: bool = False
    turn_model: str = "smart-turn-v3.2"  # manifest id of the end-of-turn model (voice.turn_detection)
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

    def spare_llm_slots(self) -> int:
        """The spare slots the LLM has: the embedded llama.cpp's (a server elsewhere gets no extra requests)."""
        return max(0, self.llm_spare_slots) if self.llm == "embedded" else 0


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
    # Caller speech over the agent that pauses it (must stay well under the 200 ms barge-in budget).
    barge_in_speech_s: float = 0.064
    # The paused agent is interrupted only after this much speech (LiveKit's default is 0.5 s) and, when
    # above 0, this many recognised words; speech that stops sooner (a backchannel, a cough) is a false
    # interruption and the agent resumes where it paused. Undecided after the timeout: it resumes anyway.
    interrupt_speech_s: float = 0.6
    interrupt_min_words: int = 0
    false_interruption_timeout_s: float = 2.0
    max_turn_s: float = 30.0
    # How the end of a turn is decided: "smart-turn" asks the turn model at the silence endpoint and
    # holds a turn it judges unfinished (a pause mid-sentence) for up to turn_max_wait_s more;
    # "silence" ends every turn after endpoint_silence_s (without the model, always). Default
    # "silence" for now: measured (bench/turn_taking.py, docs/end-of-turn.md) smart-turn answered 4
    # of 8 split questions as one turn (0 with silence) but committed complete ones 72 ms later
    # (p50 393 ms against 321: the model took 148 ms under load), and some held turns were badly
    # transcribed.
    turn_detection: Literal["smart-turn", "silence"] = "silence"
    # The model's probability that the turn is complete at or above which it commits at once.
    turn_complete_threshold: float = 0.5
    # The model judges this far into the caller's silence: after the pause's transcription (0.1 s in),
    # which it queues behind on the same thread (engines take turns), and before the endpoint. At 0.1 s
    # it ran while the reply started on that transcript and paused it (no-agent e2e +130 ms against
    # silence, 2 cores), and with so little silence it took 2 of 12 complete questions for unfinished
    # (none at 0.2 s). An "unfinished" is judged again this far in (here: at the endpoint) before the
    # turn is held.
    turn_judge_silence_s: float = 0.2
    turn_rejudge_silence_s: float = 0.3
    turn_max_wait_s: float = 3.0
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


def new_api_key() -> str:
    """A random API key (a fresh install's; `load_settings` saves it so it stays the same). Hex: a
    URL-safe token can start with "-", which a command line's `--api-key KEY` reads as an option."""
    return secrets.token_hex(24)


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    tool_timeout_s: float = 30.0
    # access (issue 14): keys, names and origins, the page's tokens, the throttle on failed keys.
    # API key -> customer id. An empty mapping means the one key in `api_key` maps to "default".
    api_keys: dict[str, str] = field(default_factory=dict)
    api_key: str = field(default_factory=new_api_key)
    # Names the Host header may carry besides loopback and the bound address (a DNS name you serve under).
    allowed_hosts: list[str] = field(default_factory=list)
    # Web origins besides the platform's own whose pages may call (e.g. "https://studio.example.com").
    allowed_origins: list[str] = field(default_factory=list)
    page_token_ttl_s: float = 600.0  # how long the token in the served page places calls
    auth_max_failures: int = 5  # failed keys from one address within auth_window_s lock it out
    auth_window_s: float = 10.0
    auth_lockout_s: float = 30.0
    # limits (issue 14): what one caller may cost the platform; each refusal says which limit and why.
    max_calls: int = 4  # concurrent calls; the next caller is told "busy" before any engine work
    max_audio_sections: int = 1  # audio m-sections per offer: each would get its own listener and VAD
    max_media_sections: int = 3  # all m-sections (audio, video, data) per offer: each costs a transceiver
    max_sdp_bytes: int = 32_768  # a browser's audio offer is 2-6 KB
    max_message_bytes: int = 65_536  # one signalling message on /call (the offer's JSON included)
    max_json_depth: int = 8  # nesting of a signalling message; checked before it is parsed
    connect_timeout_s: float = 10.0  # answer -> ICE and DTLS connected, else the call is dropped
    max_text_turns_per_s: int = 2  # typed turns per call in any one second; more are refused
    call_feed_events: int = 1_000  # events queued for one /call feed; a slow reader loses the oldest

    def customers(self) -> dict[str, str]:
        """API key -> customer id; empty keys never authenticate."""
        keys = dict(self.api_keys) if self.api_keys else {self.api_key: "default"}
        return {key: customer for key, customer in keys.items() if key}

    def main_key(self) -> str:
        """The key shown to the user and used by the platform's own callers: `api_key` if it is
        configured, else the first of `api_keys`."""
        customers = self.customers()
        return self.api_key if self.api_key in customers else next(iter(customers), "")

    def default_customer(self) -> str:
        """The customer of calls placed with the page's token: the main key's."""
        return self.customers().get(self.main_key(), "default")


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


# Keys published as defaults by earlier versions: a saved one is replaced by a random key.
RETIRED_DEFAULT_KEYS = frozenset({"dev-key"})


def _saved_key(data: dict[str, Any] | None) -> str | None:
    server = data.get("server") if data else None
    key = server.get("api_key") if isinstance(server, dict) else None
    return key if isinstance(key, str) and key and key not in RETIRED_DEFAULT_KEYS else None


def saved_api_key(path: Path | None = None) -> str | None:
    """The API key in the settings file (what a local `serve` and the app accept), or None."""
    try:
        return _saved_key(read_json_settings(path or settings_path()))
    except ValueError:
        return None


def _with_install_key(path: Path, data: dict[str, Any] | None) -> dict[str, Any]:
    """`data` with an API key: the first load gives the install a random one and saves it (only
    that field is added, so the other defaults still follow upgrades)."""
    data = dict(data or {})
    if _saved_key(data) is not None:
        return data
    server = data.get("server")
    data["server"] = {**(server if isinstance(server, dict) else {}), "api_key": new_api_key()}
    write_json_atomic(path, data)
    return data


def load_settings(path: Path | None = None) -> PlatformConfig:
    """The saved configuration, or defaults if none was saved yet (a fresh install's API key is saved)."""
    path = path or settings_path()
    data = _with_install_key(path, read_json_settings(path))
    try:
        return config_from_dict(data)
    except TypeError as exc:  # a value of the wrong shape inside an otherwise valid file
        raise ValueError(f"Settings file {path} has invalid values ({exc}).") from exc


def save_settings(config: PlatformConfig, path: Path | None = None) -> Path:
    return write_json_atomic(path or settings_path(), dataclasses.asdict(config))
