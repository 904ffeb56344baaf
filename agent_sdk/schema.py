"""JSON schema of a tool's parameters, from its signature, type hints, defaults, `Annotated`
descriptions and docstring (Google style `Args:` sections)."""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    set: "array",
    dict: "object",
    type(None): "null",
}
_ARG_LINE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def type_schema(hint: Any) -> dict[str, Any]:
    """JSON schema of one Python type hint (unknown types become strings, as the SDK does)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        schema = type_schema(args[0])
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        return {**schema, "description": text} if text else schema
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return type_schema(options[0])
        return {"anyOf": [type_schema(a) for a in options]}
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a), "string") for a in args}
        return {"type": kinds.pop(), "enum": list(args)} if len(kinds) == 1 else {"enum": list(args)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {
            "type": "string" if all(isinstance(m.value, str) for m in hint) else "integer",
            "enum": [m.value for m in hint],
        }
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple, set):
        item = args[0] if args and origin is not tuple else args[0] if args and len(set(args)) == 1 else None
        return {"type": "array", "items": type_schema(item)} if item is not None else {"type": "array"}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    return {"type": "string"}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary paragraph, {parameter: description}) of a docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or (line.strip().endswith(":") and line.strip()[:-1] in ("Args", "Arguments")):
            break
        summary.append(line.strip())
    params: dict[str, str] = {}
    in_args, current = False, None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            if stripped and not line.startswith((" ", "\t")):
                break  # the next section
            match = _ARG_LINE.match(line)
            if match and (len(line) - len(line.lstrip())) <= 4:
                current = match.group(1).lstrip("*")
                params[current] = match.group(2).strip()
            elif current and stripped:
                params[current] += " " + stripped
    return " ".join(summary), params


def function_schema(func: Callable[..., Any], skip_first: bool = False) -> tuple[str, dict[str, Any]]:
    """(docstring summary, parameters schema) of `func`; `self` and `*args/**kwargs` are skipped."""
    summary, described = parse_docstring(func.__doc__)
    hints = typing.get_type_hints(func, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    params = list(inspect.signature(func).parameters.values())
    for index, param in enumerate(params):
        if (skip_first and index == 0) or param.name == "self":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema = type_schema(hints.get(param.name, inspect.Parameter.empty)) or {"type": "string"}
        if param.name in described and "description" not in schema:
            schema["description"] = described[param.name]
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, str | int | float | bool):
            schema["default"] = param.default
        elif isinstance(param.default, enum.Enum):
            schema["default"] = param.default.value
        properties[param.name] = schema
    return summary, {"type": "object", "properties": properties, "required": required}
