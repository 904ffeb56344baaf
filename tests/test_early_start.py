"""The turn's LLM work starts at the caller's pause, before the end of the turn (pipeline/early_start.py).

Real engines, real WebRTC calls, the seed agent in its own process. The platform runs with a 0.8 s
endpoint silence, so the pause's transcript (started 0.1 s into the silence) is always in before the
turn is committed, and the head start it gives is well above zero on any machine; at the default
0.3 s it is what is left of the 0.2 s once whisper has run (about 0-80 ms on the 2-core machine).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.harness import RunningPlatform, start_platform, stop_platform
from platform_core.audio_files import write_wav
from platform_core.calls import place_call
from tests.agents_helpers import ROOT, spawn_agent
from tests.speech import speak, speech_wav, words

pytestmark = pytest.mark.slow

ENDPOINT_S = 0.8


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("early-start"), "-v", "--endpoint-silence", str(ENDPOINT_S))
    yield running
    stop_platform(running.process)


@pytest.fixture(scope="module")
def seed_agent(platform: RunningPlatform) -> Iterator[subprocess.Popen[bytes]]:
    process = spawn_agent(ROOT / "resources" / "agents" / "seed_agent.py", platform.gateway_url, platform.api_key)
    time.sleep(2.0)  # connected and joined
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    yield process
    process.terminate()
    process.wait(20)


async def test_without_an_agent_the_reply_starts_at_the_pause(platform: RunningPlatform, tmp_path: Path) -> None:
    wav = speech_wav(tmp_path, "What is the capital of France?")
    [turn] = (await place_call(platform.url, None, input_wav=wav, api_key=platform.api_key))["turns"]
    assert "paris" in words(turn["agent_text"]), turn
    # Started 0.1 s into the silence plus whisper's time, committed at 0.8 s.
    assert turn["llm_head_start_s"] is not None and turn["llm_head_start_s"] > 0.3, turn
    # The reply itself was started then, not only its prompt: its first words were in at the commit.
    assert turn["metrics"]["llm_ttft"] < 0.05, turn["metrics"]


async def test_the_tool_choice_made_at_the_pause_runs_the_tool(
    platform: RunningPlatform, seed_agent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    wav = speech_wav(tmp_path, "What's the weather in San Francisco?")
    [turn] = (await place_call(platform.url, "seed", input_wav=wav, api_key=platform.api_key))["turns"]
    assert [(c["name"], c["arguments"]) for c in turn["tool_calls"]] == [
        ("get_weather", {"location": "San Francisco"})
    ], turn
    assert words(turn["agent_text"]) & {"21", "sunny", "twenty"}, turn["agent_text"]
    assert turn["llm_head_start_s"] is not None and turn["llm_head_start_s"] > 0.3, turn


async def test_work_for_words_the_caller_then_went_on_from_is_dropped(
    platform: RunningPlatform, seed_agent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    # A 0.5 s pause (past pause_s, short of the endpoint) after "Hello there.": its work is for words
    # that are not the turn's, so the turn uses the work started at the second pause, for all of them.
    rate = 16_000
    silence = np.zeros(int(rate * 0.5), dtype=np.int16)
    pcm = np.concatenate([silence, speak("Hello there.", rate), silence, speak("What's the weather in Tokyo?", rate)])
    wav = write_wav(tmp_path / "two_parts.wav", np.concatenate([pcm, silence, silence]), rate)
    [turn] = (await place_call(platform.url, "seed", input_wav=wav, api_key=platform.api_key))["turns"]
    assert "tokyo" in words(turn["user_text"]) and "hello" in words(turn["user_text"]), turn
    assert [c["name"] for c in turn["tool_calls"]] == ["get_weather"], turn
    assert "tokyo" in turn["tool_calls"][0]["arguments"]["location"].lower(), turn
    assert turn["llm_head_start_s"] is not None and turn["llm_head_start_s"] > 0.3, turn


async def test_with_an_agent_the_reply_runs_beside_the_tool_choice_from_the_pause(
    platform: RunningPlatform, seed_agent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    wav = speech_wav(tmp_path, "Thank you, that was helpful.")
    [turn] = (await place_call(platform.url, "seed", input_wav=wav, api_key=platform.api_key))["turns"]
    assert turn["tool_calls"] == [] and turn["agent_text"], turn
    assert turn["llm_head_start_s"] is not None and turn["llm_head_start_s"] > 0.3, turn
    # The reply ran beside the choice from the pause, and "no tool" was known before the commit: its first
    # words were in.
    assert turn["metrics"]["llm_ttft"] < 0.05, turn["metrics"]
