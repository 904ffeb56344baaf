"""What the voice loop needs from the agent gateway: the conversation's tools and a way to call them.

The gateway (`platform_core.gateway`) implements `ToolRouter`; the voice loop depends only on this
interface, so it runs (and is tested) with no agent at all through `NoTools`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema object: {"type": "object", "properties", "required"}


@dataclass(frozen=True)
class ToolOutcome:
    call_id: str
    name: str
    arguments: dict[str, Any]
    status: Literal["done", "error", "timeout", "cancelled"]
    result: Any = None
    error: str | None = None
    duration_s: float = 0.0


class ToolRouter(Protocol):
    async def conversation_started(self, conversation_id: str, agent_id: str | None, customer_id: str) -> None:
        """Tell the customer's agents (conversation_ready + lifecycle started)."""
        ...

    async def conversation_ended(self, conversation_id: str) -> None:
        """Lifecycle ended; pending calls of the conversation are cancelled."""
        ...

    def tools_for(self, conversation_id: str) -> list[ToolSpec]: ...

    def has_agents(self, conversation_id: str) -> bool:
        """Whether an agent of the conversation's customer is connected (and may register tools)."""
        ...

    async def wait_for_tools(self, conversation_id: str, timeout: float) -> list[ToolSpec]:
        """The conversation's tools, waiting up to `timeout` s for a first registration."""
        ...

    async def call_tool(
        self, conversation_id: str, name: str, arguments: dict[str, Any], *, turn_id: int | None = None
    ) -> ToolOutcome:
        """Route one call to the agent that registered `name`; never raises for agent failures and never
        hangs past the tool's timeout. Publishes ToolCallUpdated events (started, then the outcome)."""
        ...


class NoTools:
    """A router with no agents: the plain voice assistant."""

    async def conversation_started(self, conversation_id: str, agent_id: str | None, customer_id: str) -> None:
        return None

    async def conversation_ended(self, conversation_id: str) -> None:
        return None

    def tools_for(self, conversation_id: str) -> list[ToolSpec]:
        return []

    def has_agents(self, conversation_id: str) -> bool:
        return False

    async def wait_for_tools(self, conversation_id: str, timeout: float) -> list[ToolSpec]:
        return []

    async def call_tool(
        self, conversation_id: str, name: str, arguments: dict[str, Any], *, turn_id: int | None = None
    ) -> ToolOutcome:
        return ToolOutcome("", name, arguments, "error", error=f"no agent provides the tool {name!r}")
