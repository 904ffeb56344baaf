"""Validation of what agents register (tool definitions) and of what the platform sends them (arguments).

A tool's parameters must be an object schema that is valid JSON Schema and that the LLM's grammar
compiler accepts (grammar.py); a tool that is not is refused alone, with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from platform_core.errors import StudioError
from platform_core.gateway.grammar import schema_problem
from platform_core.pipeline.tools import ToolSpec, argument_problems

TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_TOOLS = 128
MAX_REASON = 300  # characters of a refused tool's reason (a schema error may quote a huge value)
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 300.0  # the SDK clamps timeout_seconds to the same range


class SpecError(StudioError, ValueError):
    """A tool registration that cannot be accepted; the message names the tool and the problem."""


def clamp_timeout(seconds: float) -> float:
    return max(MIN_TIMEOUT_S, min(float(seconds), MAX_TIMEOUT_S))


def parse_tools(raw: Any) -> tuple[list[ToolSpec], dict[str, float], list[tuple[str, str]]]:
    """Tool specs from a `register_conversation_tools` payload, the timeouts tools declared (an optional
    `timeout_seconds` per tool, sent by agent_sdk; conversimple-sdk sends none), and the refused tools
    as (name, reason). A bad tool is refused alone; only a `tools` that is not a list of at most
    MAX_TOOLS refuses the whole registration (SpecError)."""
    if not isinstance(raw, list):
        raise SpecError("'tools' must be a list of {name, description, parameters}")
    if len(raw) > MAX_TOOLS:
        raise SpecError(f"{len(raw)} tools registered; at most {MAX_TOOLS} per conversation")
    specs: list[ToolSpec] = []
    timeouts: dict[str, float] = {}
    refused: list[tuple[str, str]] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        label = name if isinstance(name, str) and TOOL_NAME.match(name) else f"tools[{index}]"
        try:
            spec, timeout = _parse_tool(index, item, {s.name for s in specs})
        except SpecError as exc:
            refused.append((label, exc.message[:MAX_REASON]))
            continue
        specs.append(spec)
        if timeout is not None:
            timeouts[spec.name] = timeout
    return specs, timeouts, refused


def _parse_tool(index: int, item: Any, seen: set[str]) -> tuple[ToolSpec, float | None]:
    if not isinstance(item, dict):
        raise SpecError(f"tools[{index}] must be an object with name, description and parameters")
    name = item.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise SpecError(f"tools[{index}].name {str(name)[:80]!r} must match {TOOL_NAME.pattern}")
    if name in seen:
        raise SpecError(f"tool {name!r} is registered twice in one registration")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise SpecError(f"tool {name!r}: description must be a string")
    parameters = item.get("parameters", {"type": "object", "properties": {}})
    _check_parameters(name, parameters)
    timeout = item.get("timeout_seconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
        raise SpecError(f"tool {name!r}: timeout_seconds must be a positive number")
    spec = ToolSpec(name=name, description=description, parameters=parameters)
    return spec, None if timeout is None else clamp_timeout(timeout)


def _check_parameters(name: str, parameters: Any) -> None:
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise SpecError(f"tool {name!r}: parameters must be a JSON schema with type 'object'")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
        raise SpecError(f"tool {name!r}: parameters.properties must map names to schemas")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SpecError(f"tool {name!r}: parameters.required must be a list of property names")
    problem = schema_problem(parameters)
    if problem:
        raise SpecError(f"tool {name!r}: parameters {problem}")


def check_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """None if `arguments` fit the tool's schema, else what is wrong (told to the LLM)."""
    problems = argument_problems(spec, arguments)
    return f"invalid arguments for {spec.name}: {'; '.join(problems)}" if problems else None
