"""Whether a tool's `parameters` schema can serve the LLM: valid JSON Schema, and of a shape the embedded
llama.cpp server's grammar compiler accepts.

The tool-choice pass (pipeline/tool_choice.py) embeds every tool's schema in one JSON schema and sends it
to llama-server, which compiles it into a grammar. A schema it cannot compile fails that request, and
with it every later turn of the conversation; a schema no value satisfies hangs the generation. So the
gateway refuses such a tool at registration. `xllamacpp.json_schema_to_grammar` does not validate, so the
unsupported shapes are checked here; each was found by sending it to the real server (the list is in
docs/agent-protocol.md, "Tool schemas").
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for

MAX_DEPTH = 32  # nesting of subschemas (our limit: deeper is no tool's parameters, and costs the grammar)
MAX_BOUND = 1000  # llama-server refuses (or stalls on) repetition bounds this large
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_VALUES = ("additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames")
REFERENCES = ("$ref", "$dynamicRef", "$recursiveRef", "$anchor", "$dynamicAnchor")
RANGES = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"))


def schema_problem(parameters: dict[str, Any]) -> str | None:
    """None if `parameters` can be used, else what is wrong with it (said to the agent)."""
    if "$schema" in parameters and validator_for(parameters, default=None) is None:  # type: ignore[arg-type]
        return f"$schema {parameters['$schema']!r} is not a JSON Schema draft this platform knows"
    try:
        validator_for(parameters).check_schema(parameters)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        return f"not a valid JSON Schema at {where}: {exc.message}"
    except RecursionError:
        return f"the schema nests too deeply (at most {MAX_DEPTH} levels)"
    for path, node in _subschemas(parameters, "", 0):
        problem = _node_problem(node)
        if problem:
            return f"{problem} (at {path or 'the top level'})"
    for name in parameters.get("required", []):
        if name not in parameters.get("properties", {}):
            return (
                f"required property {name!r} is not in properties (the LLM may fill only the listed properties, "
                "so no call could satisfy it)"
            )
    return None


def _subschemas(node: Any, path: str, depth: int) -> Iterator[tuple[str, Any]]:
    if depth > MAX_DEPTH:
        yield path, {"$depth": True}
        return
    yield path, node
    if not isinstance(node, dict):
        return
    for key in SCHEMA_VALUES:
        value = node.get(key)
        if isinstance(value, dict) or (key != "additionalProperties" and isinstance(value, bool)):
            yield from _subschemas(value, f"{path}/{key}", depth + 1)
    items = node.get("items")
    for key, children in [(k, node.get(k)) for k in SCHEMA_LISTS] + [("items", items)]:
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from _subschemas(child, f"{path}/{key}/{index}", depth + 1)
    for key in SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _subschemas(child, f"{path}/{key}/{name}", depth + 1)


def _node_problem(node: Any) -> str | None:
    if isinstance(node, bool):
        return "true/false schemas are not supported by the LLM's grammar; use {} or an object schema"
    if not isinstance(node, dict):
        return None  # check_schema already refused it
    if node.get("$depth"):
        return f"the schema nests more than {MAX_DEPTH} levels deep"
    for key in REFERENCES:
        if key in node:
            return (
                f"{key} is not supported: the tool's schema is embedded in the LLM's tool-choice grammar, "
                "where references do not resolve; write the definition in place"
            )
    if "enum" in node and not node["enum"]:
        return "enum must list at least one value"
    for low_key, high_key in RANGES:
        low, high = node.get(low_key, 0), node.get(high_key)
        if isinstance(low, int) and low > MAX_BOUND:
            return f"{low_key} {low} is too large for the LLM's grammar (at most {MAX_BOUND})"
        if isinstance(low, int) and isinstance(high, int) and low > high:
            return f"{low_key} {low} is above {high_key} {high}: no value can satisfy it"
    return _number_problem(node)


def _number_problem(node: dict[str, Any]) -> str | None:
    low, high = _number(node.get("minimum")), _number(node.get("maximum"))
    low_x, high_x = _number(node.get("exclusiveMinimum")), _number(node.get("exclusiveMaximum"))
    if node.get("type") == "integer":  # the smallest and largest integers allowed
        lows = [math.ceil(v) for v in (low,) if v is not None] + [math.floor(v) + 1 for v in (low_x,) if v is not None]
        highs = [math.floor(v) for v in (high,) if v is not None] + [
            math.ceil(v) - 1 for v in (high_x,) if v is not None
        ]
        if lows and highs and max(lows) > min(highs):
            return "no integer lies within minimum/maximum: no value can satisfy it"
        return None
    floor = max((v for v in (low, low_x) if v is not None), default=None)
    ceiling = min((v for v in (high, high_x) if v is not None), default=None)
    if floor is None or ceiling is None:
        return None
    exclusive = floor in (low_x,) or ceiling in (high_x,)
    if floor > ceiling or (floor == ceiling and exclusive):
        return "no number lies within minimum/maximum: no value can satisfy it"
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
