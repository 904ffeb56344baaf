"""The Platform's public methods that hosts use instead of its internals (the app, the self-test):
agents(), synthesize(), speech_rate and llm_name, on a real platform with the bundled engines."""

from __future__ import annotations

import numpy as np
import pytest

from agent_sdk import Agent
from platform_core import Platform, PlatformConfig, PlatformError
from tests.agents_helpers import wait_until


def _config(api_key: str = "key-api") -> PlatformConfig:
    config = PlatformConfig()
    config.server.port = 0
    config.server.api_key = api_key
    return config


def test_before_start_there_are_no_agents_and_no_voice() -> None:
    platform = Platform(_config())
    assert platform.agents() == []
    with pytest.raises(PlatformError) as raised:
        platform.synthesize("Hello.")
    assert "not loaded" in str(raised.value) and raised.value.hint
    with pytest.raises(PlatformError):
        _ = platform.speech_rate


@pytest.mark.slow
async def test_a_started_platform_speaks_and_lists_its_agents() -> None:
    platform = Platform(_config())
    await platform.start()
    agent = Agent(api_key="key-api", customer_id=platform.customer_for("key-api"), platform_url=platform.gateway_url)
    try:
        chunks = [chunk async for chunk in platform.synthesize("Hello there.")]
        speech = np.concatenate(chunks)
        assert speech.dtype == np.int16 and np.abs(speech).max() > 1000  # audible, not silence
        assert 0.3 < speech.size / platform.speech_rate < 5.0  # two words: about a second
        assert platform.llm_name
        await agent.start()
        await wait_until(lambda: any(a.joined for a in platform.agents()), 15, "the agent")
        [info] = platform.agents()
        assert info.customer_id == platform.customer_for("key-api")
    finally:
        await agent.stop()
        await platform.stop()
