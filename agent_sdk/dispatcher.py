"""The dispatcher: one connection, one agent instance per conversation, chosen by the platform's agent id.

Unlike conversimple's dispatcher (one websocket per conversation) all instances share the dispatcher's
connection; each still has its own state and hooks, and is dropped when its conversation ends.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_sdk.agent import DEFAULT_URL, Agent
from agent_sdk.runtime import Runtime
from agent_sdk.wire import derived_customer_id

log = logging.getLogger(__name__)


def load_agents(path: str | Path) -> list[type[Agent]]:
    """Agent subclasses defined in a .py file, or in the .py files and packages directly in a folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no agent file or folder at {path}")
    files = (
        [path]
        if path.is_file()
        else [
            p / "__init__.py" if p.is_dir() else p
            for p in sorted(path.iterdir())
            if (p.suffix == ".py" and not p.name.startswith("_")) or (p / "__init__.py").exists()
        ]
    )
    found: list[type[Agent]] = []
    for file in files:
        module_name = f"agent_sdk_user.{file.parent.name if file.name == '__init__.py' else file.stem}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        found += [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Agent) and obj is not Agent and obj.__module__ == module_name
        ]
    return found


class Dispatcher:
    def __init__(
        self,
        agents: Sequence[type[Agent]],
        api_key: str,
        platform_url: str | Sequence[str] = DEFAULT_URL,
        customer_id: str | None = None,
        **connection_options: Any,
    ) -> None:
        if not agents:
            raise ValueError("the dispatcher needs at least one Agent subclass")
        self.agents = list(agents)
        self.api_key = api_key
        self.platform_url = platform_url
        self.customer_id = customer_id or derived_customer_id(api_key)
        self.runtime = Runtime(
            platform_url, api_key, self.customer_id, self._instantiate, on_error=self._log_error, **connection_options
        )

    @property
    def active(self) -> dict[str, Agent]:
        """Conversation id -> its agent instance."""
        return dict(self.runtime.bindings)

    def pick(self, agent_id: str | None) -> type[Agent] | None:
        """The class for `agent_id`; a conversation without one goes to the only class, if there is one."""
        for cls in self.agents:
            if cls.agent_id is not None and cls.agent_id == agent_id:
                return cls
        if agent_id is None and len(self.agents) == 1:
            return self.agents[0]
        return None

    def _instantiate(self, conversation_id: str, agent_id: str | None) -> Agent | None:
        cls = self.pick(agent_id)
        if cls is None:
            log.info("no agent class for agent_id %r; conversation %s left to others", agent_id, conversation_id)
            return None
        log.info("starting %s for conversation %s", cls.__name__, conversation_id)
        return cls(api_key=self.api_key, customer_id=self.customer_id, platform_url=self.platform_url)

    @staticmethod
    def _log_error(error_type: str, message: str, details: dict[str, Any]) -> None:
        log.error("platform error (%s): %s", error_type, message)

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()

    async def run_forever(self) -> None:
        await self.start()
        await self.runtime.connection.wait_closed()
        if self.runtime.connection.failure is not None:
            raise self.runtime.connection.failure
