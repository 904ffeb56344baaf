"""Prompt warm-ups: fill the LLM's KV cache with the fixed prompt prefixes before a turn needs them.

A conversation warms its own prompts when it starts (`Responder.warm_up`), but for the first call after
a start that was too late: its first turn came before the 200-token tool-choice prompt was processed
(tool choice 1.7 s instead of 0.4-0.8 s, bench/agent_tax.py). So the platform also remembers each
customer's last tool set (in the cache folder, so it outlives a restart) and warms that tool prompt as
soon as the customer's agent connects, and the reply prompt once the engines are ready.

Warm-ups only use an idle LLM: they give way to any caller's request (`LLMQueue.gives_way("always")`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from pathlib import Path

from platform_core.config import PlatformConfig, write_json_atomic
from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm import LLMError
from platform_core.engines.runner import Engines
from platform_core.events import AgentConnected, Event, ToolsRegistered
from platform_core.pipeline.tool_choice import warm_tool_choice
from platform_core.pipeline.tools import ToolSpec

log = logging.getLogger(__name__)
PROBE = [ChatMessage("user", "Hello.")]


async def warm_prompts(engines: Engines, config: PlatformConfig, tools: list[ToolSpec], system_prompt: str) -> None:
    """Process the tool-choice prompt's prefix for `tools` (if any) and the reply's for `system_prompt`
    (if not empty), so a turn finds them in the KV cache. Only for the embedded LLM: a remote server's
    cache is not ours to fill (and may cost money)."""
    if config.engines.llm != "embedded":
        return
    # A caller's request stops the warm-up (LLMPreempted); a turn that needs the LLM says itself if it fails.
    with contextlib.suppress(LLMError, EngineUnavailable), engines.llm_queue.gives_way("always"):
        if tools:
            await warm_tool_choice(engines.llm, tools, PROBE)
        if system_prompt:
            await process_prompt(engines, [ChatMessage("system", system_prompt), *PROBE])


async def process_prompt(engines: Engines, messages: list[ChatMessage]) -> None:
    """One token's request: llama.cpp processes `messages` and keeps them in a slot's KV cache."""
    async for _ in engines.llm.stream_chat(messages, max_tokens=1):
        pass


async def warm_reply_prefix(engines: Engines, messages: list[ChatMessage]) -> None:
    """Process the reply's prompt so far (system prompt, history, the caller's words) beside the tool
    choice, so the reply, asked next, starts from its KV cache (measured in one A/B, bench/agent_tax.py:
    no-tool turns' e2e p50 1441 -> 1327 ms; llm_ttft 295 -> 103 ms). The responder stops it as soon as
    the model names a tool: beside a call's arguments it slowed their decoding more than it saved the
    reply (tool_choice 764 -> 1076 ms). It gives way when a caller has to wait."""
    with contextlib.suppress(LLMError, EngineUnavailable), engines.llm_queue.gives_way("when_waiting"):
        await process_prompt(engines, messages)


class PromptWarmer:
    """Remembers the tool set each customer's agent registered and warms it when that agent connects."""

    def __init__(self, engines: Engines, config: PlatformConfig, path: Path) -> None:
        self.engines = engines
        self.config = config
        self.path = path
        self.tools: dict[str, list[ToolSpec]] = self._load()
        self._tasks: set[asyncio.Task[None]] = set()

    def _load(self) -> dict[str, list[ToolSpec]]:
        try:
            data = json.loads(self.path.read_text())
            return {customer: [ToolSpec(**spec) for spec in specs] for customer, specs in data.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as exc:  # a damaged cache file only costs one cold prompt
            log.warning("ignoring %s: %s", self.path, exc)
            return {}

    def start(self, connected_customers: set[str]) -> None:
        """The engines are ready: warm the default reply prompt and the agents' already connected."""
        self._warm([], self.config.profile_for(None).system_prompt)
        for customer in connected_customers & set(self.tools):
            self._warm(self.tools[customer], "")

    def on_event(self, event: Event) -> None:
        if isinstance(event, ToolsRegistered):
            specs = [ToolSpec(t["name"], t["description"], t["parameters"]) for t in event.tools]
            if specs and specs != self.tools.get(event.customer_id):
                self.tools[event.customer_id] = specs
                self._save()
        elif isinstance(event, AgentConnected) and event.customer_id in self.tools:
            self._warm(self.tools[event.customer_id], "")

    def _save(self) -> None:
        data = {customer: [dataclasses.asdict(spec) for spec in specs] for customer, specs in self.tools.items()}
        try:
            write_json_atomic(self.path, data)
        except OSError as exc:
            log.warning("could not save the known tool sets to %s: %s", self.path, exc)

    def _warm(self, tools: list[ToolSpec], system_prompt: str) -> None:
        task = asyncio.ensure_future(warm_prompts(self.engines, self.config, tools, system_prompt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
