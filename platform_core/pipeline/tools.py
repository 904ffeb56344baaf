"""What the voice loop needs from the agent gateway: the conversation's tools and a way to call them.

The gateway (`platform_core.gateway`) implements `ToolRouter`; the voice loop depends only on this
interface, so it runs (and is tested) with no agent at all through `NoTools`. `argument_problems` is
the one check of call arguments against a tool's schema (the tool choice and the gateway both use it).
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


# The subset of JSON schema that tool parameters use: an object of typed properties.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_names(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    return [name for name in declared if isinstance(name, str)] if isinstance(declared, list) else []


def _has_type(value: Any, names: list[str]) -> bool:
    for name in names:
        types = _JSON_TYPES.get(name)
        if types is None:
            return True  # a type keyword outside the subset: not a reason to refuse
        if isinstance(value, bool) and name in ("integer", "number"):
            continue  # JSON true is not a number
        if isinstance(value, types):
            return True
    return False


def _value_problem(name: str, value: Any, schema: dict[str, Any]) -> str | None:
    names = _type_names(schema)
    if names and not _has_type(value, names):
        return f"argument {name!r} must be {' or '.join(names)}, got {type(value).__name__}"
    allowed = schema.get("enum")
    if isinstance(allowed, list) and value not in allowed:
        return f"argument {name!r} must be one of {allowed}, got {value!r}"
    if "const" in schema and value != schema["const"]:
        return f"argument {name!r} must be {schema['const']!r}"
    return None


def argument_problems(spec: ToolSpec, arguments: Any) -> list[str]:
    """What is wrong with `arguments` for `spec` (empty: they fit): an object, its required names
    present, no others when the schema sets additionalProperties to false, each value of its declared
    type(s), in its `enum` and equal to its `const`."""
    if not isinstance(arguments, dict):
        return [f"arguments must be an object, got {type(arguments).__name__}"]
    schema = spec.parameters or {}
    properties: dict[str, Any] = schema.get("properties", {})
    problems = [f"missing required argument {name!r}" for name in schema.get("required", []) if name not in arguments]
    for name, value in arguments.items():
        prop = properties.get(name)
        if not isinstance(prop, dict):
            if schema.get("additionalProperties") is False:
                problems.append(f"unexpected argument {name!r}")
            continue
        problem = _value_problem(name, value, prop)
        if problem:
            problems.append(problem)
    return problems


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

    def cancel_tool_calls(self, conversation_id: str, *, turn_id: int | None = None, reason: str = "") -> None:
        """Cancel the conversation's pending calls (only `turn_id`'s if given) at once: each is published
        as cancelled, its awaiting `call_tool` returns a cancelled outcome, its agent is told, and a late
        answer is dropped."""
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

    def cancel_tool_calls(self, conversation_id: str, *, turn_id: int | None = None, reason: str = "") -> None:
        return None
