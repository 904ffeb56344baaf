"""What a QA run calls: the embedded platform (started for the run) or a running one, and the agents
a scenario starts (separate processes, as any agent author runs them)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from platform_core.audio import WEBRTC_RATE, Int16Array
from platform_core.config import EngineConfig, PlatformConfig
from platform_core.engines.base import LanguageModel, TextToSpeech
from platform_core.errors import StudioError
from platform_core.platform import Platform
from platform_core.protocol import GATEWAY_PATH
from platform_core.qa.conditions import resample

AGENT_JOIN_TIMEOUT_S = 60.0
REMOTE_AGENT_SETTLE_S = 2.0  # a running platform cannot be asked whether the agent joined: give it this long


class AgentStartError(StudioError, RuntimeError):
    """A scenario's agent file did not start or connect."""


class EmbeddedTarget:
    """A platform in this process with its own random API key; engines loaded once for the run."""

    def __init__(self, config: PlatformConfig | None = None) -> None:
        config = config or PlatformConfig()
        config.server.port = 0
        config.server.api_key = self.api_key = secrets.token_hex(12)
        self.platform = Platform(config)

    async def start(self) -> None:
        await self.platform.start()

    @property
    def url(self) -> str:
        return self.platform.url

    @property
    def gateway_url(self) -> str:
        return self.platform.gateway_url

    @property
    def llm(self) -> LanguageModel | None:
        return self.platform.engines.llm if self.platform.engines is not None else None

    async def voice(self, text: str) -> Int16Array:
        chunks = [c async for c in self.platform.synthesize(text, steady=True)]  # a rerun says the same
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return resample(pcm, self.platform.speech_rate, WEBRTC_RATE)

    def joined_agents(self) -> int | None:
        return sum(1 for a in self.platform.agents() if a.joined)

    async def aclose(self) -> None:
        await self.platform.stop()


class RemoteTarget:
    """A platform already running (`--url`, `--api-key`); the caller's voice is synthesized here."""

    llm: LanguageModel | None = None  # the running platform's LLM is not reachable from here

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.api_key = url, api_key
        parts = urlsplit(url if "://" in url else f"http://{url}")
        scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
        self.gateway_url = f"{scheme}://{parts.netloc}{GATEWAY_PATH}"
        self._tts: TextToSpeech | None = None

    async def start(self) -> None:
        """Nothing to start: the voice loads on the first spoken turn (typed suites need none)."""

    async def voice(self, text: str) -> Int16Array:
        if self._tts is None:
            from platform_core.engines.tts.piper import PiperTTS
            from platform_core.models import ensure_model

            path = await asyncio.to_thread(ensure_model, EngineConfig().tts_voice)
            self._tts = await asyncio.to_thread(PiperTTS, path)
        tts = self._tts
        chunks = await asyncio.to_thread(lambda: list(tts.synthesize(text, steady=True)))
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return resample(pcm, int(getattr(tts, "sample_rate", 22050)), WEBRTC_RATE)

    def joined_agents(self) -> int | None:
        return None

    async def aclose(self) -> None:
        if self._tts is not None:
            self._tts.close()


Target = EmbeddedTarget | RemoteTarget


def agent_command(agent_file: Path, url: str, api_key: str) -> list[str]:
    """An agent file run by agent_sdk's runner: this Python, or the bundle's own executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--run-agent", str(agent_file), "--url", url, "--api-key", api_key]
    runner = [sys.executable, "-m", "agent_sdk.cli", "run", str(agent_file), "--url", url, "--api-key", api_key]
    return [*runner, "--log-level", "WARNING"]


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-4:])
    except OSError:
        return ""


async def start_agent(
    target: Target, agent_file: Path, setup: dict[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start the agent file for one scenario and wait until it has joined the platform."""
    env = {**os.environ, "CONVERSIMPLE_SETUP": json.dumps(setup)}
    env.update({f"CONVERSIMPLE_SETUP_{k.upper()}": v for k, v in setup.items()})
    before = target.joined_agents()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = await asyncio.to_thread(
            subprocess.Popen,
            agent_command(agent_file, target.gateway_url, target.api_key),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + (AGENT_JOIN_TIMEOUT_S if before is not None else REMOTE_AGENT_SETTLE_S)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AgentStartError(
                f"the agent {agent_file.name} exited with code {process.returncode}: {_tail(log_path)}",
                f"run it by hand to see why: conversimple-agent run {agent_file}",
            )
        joined = target.joined_agents()
        if joined is not None and before is not None and joined > before:
            return process
        await asyncio.sleep(0.1)
    if before is None:
        return process
    await stop_agent(process)
    raise AgentStartError(
        f"the agent {agent_file.name} did not join within {AGENT_JOIN_TIMEOUT_S:.0f} s: {_tail(log_path)}",
        "check the agent file runs (conversimple-agent run FILE)",
    )


async def stop_agent(process: subprocess.Popen[bytes], target: Target | None = None) -> None:
    """Terminate the agent, then wait until the platform no longer counts it (the next one is counted anew)."""
    before = target.joined_agents() if target is not None else None
    if process.poll() is None:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
    if target is not None and before:
        deadline = time.monotonic() + 5.0
        while (target.joined_agents() or 0) >= before and time.monotonic() < deadline:  # noqa: ASYNC110 (polled)
            await asyncio.sleep(0.05)
