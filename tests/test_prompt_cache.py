"""The platform's prompt warm-ups (pipeline/prompt_cache.py), as pure logic: a scripted stand-in LLM
records the prompts it is asked to process. bench/agent_tax.py measures the first call with the real
llama.cpp ("first call, agent")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from platform_core import PlatformConfig
from platform_core.engines.llm.queue import LLMQueue, QueuedLLM
from platform_core.engines.runner import Engines
from platform_core.events import AgentConnected, ToolsRegistered
from platform_core.pipeline.prompt_cache import PromptWarmer
from tests.test_llm_queue import SlowModel

WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather for a location.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


class RecordingModel(SlowModel):
    def __init__(self) -> None:
        super().__init__(pause_s=0.0)
        self.prompts: list[str] = []

    async def stream_chat(self, messages: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.prompts.append(messages[0].content)
        async for delta in super().stream_chat(messages, **kwargs):
            yield delta


def warmer(tmp_path: Path) -> tuple[PromptWarmer, RecordingModel]:
    model = RecordingModel()
    queue = LLMQueue(slots=1, spare=1)
    engines = cast(Engines, SimpleNamespace(llm=QueuedLLM(model, queue), llm_queue=queue))
    return PromptWarmer(engines, PlatformConfig(), tmp_path / "tool-sets.json"), model


def registered(customer: str = "acme") -> ToolsRegistered:
    return ToolsRegistered(customer_id=customer, conversation_id="c1", connection_id="a1", tools=(WEATHER,))


async def test_a_known_agent_that_connects_gets_its_tool_prompt_warmed_even_after_a_restart(tmp_path: Path) -> None:
    first, model = warmer(tmp_path)
    first.on_event(registered())
    saved = json.loads((tmp_path / "tool-sets.json").read_text())
    assert saved["acme"][0]["name"] == "get_weather"
    restarted, model = warmer(tmp_path)  # a new platform process reads what the last one saw
    restarted.on_event(AgentConnected(customer_id="acme", connection_id="a2"))
    restarted.on_event(AgentConnected(customer_id="stranger", connection_id="a3"))  # no tools known: nothing
    await asyncio.sleep(0.05)
    assert len(model.prompts) == 1 and "get_weather(location)" in model.prompts[0]
    await restarted.aclose()


async def test_the_reply_prompt_and_connected_agents_are_warmed_when_the_engines_are_ready(tmp_path: Path) -> None:
    warm, model = warmer(tmp_path)
    warm.on_event(registered())
    warm.start({"acme"})
    await asyncio.sleep(0.05)
    system_prompt = PlatformConfig().profile_for(None).system_prompt
    assert len(model.prompts) == 2
    assert any("get_weather" in p for p in model.prompts) and system_prompt in model.prompts
    await warm.aclose()


def test_a_damaged_tool_set_file_costs_only_a_cold_prompt(tmp_path: Path) -> None:
    (tmp_path / "tool-sets.json").write_text("{not json")
    warm, _ = warmer(tmp_path)
    assert warm.tools == {}
