"""Validation of what agents register (tool definitions) and of what the platform sends them (arguments).

Deliberately small: the subset of JSON schema that tool parameters use (an object of typed properties).
"""

from __future__ import annotations

import re
from typing import Any

from platform_core.errors import StudioError
from platform_core.pipeline.tools import ToolSpec, argument_problems

TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
MAX_TOOLS = 128
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 300.0  # the SDK clamps timeout_seconds to the same range


class SpecError(StudioError, ValueError):
    """A tool registration that cannot be accepted; the message names the tool and the problem."""


def clamp_timeout(seconds: float) -> float:
    return max(MIN_TIMEOUT_S, min(float(seconds), MAX_TIMEOUT_S))


def parse_tools(raw: Any) -> tuple[list[ToolSpec], dict[str, float]]:
    """Tool specs from a `register_conversation_tools` payload, and the timeouts tools declared
    (an optional `timeout_seconds` per tool, sent by agent_sdk; conversimple-sdk sends none)."""
    if not isinstance(raw, list):
        raise SpecError("'tools' must be a list of {name, description, parameters}")
    if len(raw) > MAX_TOOLS:
        raise SpecError(f"{len(raw)} tools registered; at most {MAX_TOOLS} per conversation")
    specs: list[ToolSpec] = []
    timeouts: dict[str, float] = {}
    seen: set[str] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise SpecError(f"tools[{index}] must be an object with name, description and parameters")
        name = item.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise SpecError(f"tools[{index}].name {name!r} must match {TOOL_NAME.pattern}")
        if name in seen:
            raise SpecError(f"tool {name!r} is registered twice in one registration")
        seen.add(name)
        description = item.get("description", "")
        if not isinstance(description, str):
            raise SpecError(f"tool {name!r}: description must be a string")
        parameters = item.get("parameters", {"type": "object", "properties": {}})
        _check_parameters(name, parameters)
        timeout = item.get("timeout_seconds")
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
                raise SpecError(f"tool {name!r}: timeout_seconds must be a positive number")
            timeouts[name] = clamp_timeout(timeout)
        specs.append(ToolSpec(name=name, description=description, parameters=parameters))
    return specs, timeouts


def _check_parameters(name: str, parameters: Any) -> None:
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise SpecError(f"tool {name!r}: parameters must be a JSON schema with type 'object'")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(v, dict) for v in properties.values()):
        raise SpecError(f"tool {name!r}: parameters.properties must map names to schemas")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SpecError(f"tool {name!r}: parameters.required must be a list of property names")


def check_arguments(spec: ToolSpec, arguments: dict[str, Any]) -> str | None:
    """None if `arguments` fit the tool's schema, else what is wrong (told to the LLM)."""
    problems = argument_problems(spec, arguments)
    return f"invalid arguments for {spec.name}: {'; '.join(problems)}" if problems else None
