"""The `@tool` / `@tool_async` decorators and how a tool is invoked.

Works like conversimple's decorators (`@tool("description")`) and also bare (`@tool`), with keyword
options: `@tool(description=..., name=..., timeout=10)`. Sync tools run in a worker thread so they never
block the connection; async tools are awaited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, overload

from agent_sdk.schema import function_schema

F = TypeVar("F", bound=Callable[..., Any])
MARK = "_conversimple_tool"  # the attribute conversimple-sdk uses too


@dataclass
class ToolCall:
    """A tool call request from the platform (as conversimple's `ToolCall`)."""

    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    conversation_id: str
    timeout_seconds: float = 30.0
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]  # bound to its agent instance
    is_async: bool
    timeout_s: float | None = None

    def wire(self) -> dict[str, Any]:
        """The registration entry sent to the platform."""
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "parameters": self.parameters}
        if self.timeout_s is not None:
            entry["timeout_seconds"] = self.timeout_s
        return entry

    async def invoke(self, arguments: dict[str, Any]) -> Any:
        if self.is_async:
            return await self.function(**arguments)
        # to_thread copies the context, so `agent.state` still names the calling conversation
        return await asyncio.to_thread(self.function, **arguments)


def _mark(func: F, description: str | None, name: str | None, timeout: float | None) -> F:
    setattr(
        func,
        MARK,
        {
            "description": description,
            "name": name,
            "timeout": timeout,
            "type": "async" if inspect.iscoroutinefunction(func) else "sync",
        },
    )
    return func


@overload
def tool(description: F, /) -> F: ...
@overload
def tool(
    description: str | None = None, /, *, name: str | None = None, timeout: float | None = None
) -> Callable[[F], F]: ...
def tool(description: str | F | None = None, /, *, name: str | None = None, timeout: float | None = None) -> Any:
    """Mark a method (sync or async) as a tool. The description defaults to the docstring's summary."""
    if callable(description):
        return _mark(description, None, None, None)
    return functools.partial(_mark, description=description, name=name, timeout=timeout)


tool_async = tool
"""conversimple's name for async tools; `@tool` handles both."""


def discover(agent: object) -> dict[str, ToolDefinition]:
    """The tools of an agent instance, bound to it."""
    found: dict[str, ToolDefinition] = {}
    for attr in dir(type(agent)):
        function = getattr(type(agent), attr, None)
        info = getattr(function, MARK, None)
        if not callable(function) or not isinstance(info, dict):
            continue
        summary, parameters = function_schema(function, skip_first=True)
        name = info.get("name") or function.__name__
        found[name] = ToolDefinition(
            name=name,
            description=info.get("description") or summary or name.replace("_", " "),
            parameters=parameters,
            function=getattr(agent, attr),
            is_async=inspect.iscoroutinefunction(function),
            timeout_s=info.get("timeout"),
        )
    return found


def json_default(obj: Any) -> Any:
    """`json.dumps` fallback for tool results: dataclasses and pydantic models become dicts, sets lists,
    anything else its str()."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)
