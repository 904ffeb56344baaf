"""Reading scenario files: YAML, checked against the shipped JSON Schema, then built into `Scenario`s.

A bad file raises `ScenarioError` naming the file, the line and the field, never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from platform_core.errors import StudioError
from platform_core.qa.scenario import AudioConditions, BargeIn, Expectation, Scenario, ToolExpectation, Turn
from platform_core.resources import resource_path

SCHEMA_PARTS = ("scenarios", "scenario.schema.json")
SUFFIXES = (".yaml", ".yml")
_HINT = "see docs/qa.md; editors can check files against resources/scenarios/scenario.schema.json"


class ScenarioError(StudioError, ValueError):
    """A scenario file that cannot be used; the message names the file, line and field."""


@cache
def scenario_schema() -> dict[str, Any]:
    return dict(json.loads(resource_path(*SCHEMA_PARTS).read_text(encoding="utf-8")))


def find_scenario_files(paths: Iterable[str | Path]) -> list[Path]:
    """The scenario files among `paths` (files, or folders searched recursively), in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise ScenarioError(f"{path}: no such file or folder", "give scenario files (.yaml) or folders of them")
    if not found:
        raise ScenarioError(f"no scenario files (*.yaml) in {', '.join(map(str, paths))}", _HINT)
    return found


def load_scenario(path: str | Path) -> Scenario:
    """One scenario file -> a `Scenario`; raises `ScenarioError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            f"{path}: cannot read the file ({exc})", "check the path and that it is UTF-8 text"
        ) from exc
    node, data = _parse(path, text)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(scenario_schema()).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ScenarioError(f"{path}:{_line(node, list(error.absolute_path))}: {where}: {_explain(error)}", _HINT)
    return _build(path, node, data)


def _parse(path: Path, text: str) -> tuple[yaml.Node, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError(f"{path}: the file is empty", _HINT)
        return node, loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}{line}: not valid YAML: {problem}", "check the indentation and quotes") from exc
    finally:
        loader.dispose()


def _line(node: yaml.Node, path: list[str | int]) -> int:
    """The line (1-based) of the value at `path` in the YAML tree, or of its nearest parent."""
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _explain(error: jsonschema.ValidationError) -> str:
    schema: Any = error.schema
    if error.validator == "oneOf" and isinstance(schema, dict) and schema["oneOf"][0].get("required") == ["say"]:
        return "a turn needs exactly one of say, wav, text or silence_s"
    allowed: Any = error.validator_value
    if error.validator == "enum" and allowed:
        return f"{error.instance!r} is not one of {', '.join(map(str, allowed))}"
    return str(error.message)


def _words(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _build(path: Path, node: yaml.Node, data: dict[str, Any]) -> Scenario:
    base = path.parent
    agent_file = None
    if "agent" in data:
        agent_file = (base / data["agent"]).resolve()
        if not agent_file.is_file():
            raise ScenarioError(f"{path}:{_line(node, ['agent'])}: agent: no such file {agent_file}", _HINT)
    if "setup" in data and agent_file is None:
        raise ScenarioError(
            f"{path}:{_line(node, ['setup'])}: setup: values go to an agent the run starts",
            "give `agent: FILE` with `setup:`; a running agent (agent_id only) cannot be set up per call",
        )
    turns = tuple(_turn(path, node, base, i, t) for i, t in enumerate(data["turns"]))
    return Scenario(
        name=data["name"],
        path=path,
        turns=turns,
        agent_file=agent_file,
        agent_id=data.get("agent_id") or (agent_id_of(agent_file) if agent_file else None),
        setup={str(k): str(v) for k, v in (data.get("setup") or {}).items()},
        timeout_s=float(data.get("timeout_s", 60.0)),
        tags=tuple(data.get("tags", ())),
    )


def _turn(path: Path, node: yaml.Node, base: Path, i: int, data: dict[str, Any]) -> Turn:
    def fail(field: str, problem: str) -> ScenarioError:
        line = _line(node, ["turns", i, *field.split(".")])
        return ScenarioError(f"{path}:{line}: turns/{i}/{field.replace('.', '/')}: {problem}", _HINT)

    wav = (base / data["wav"]).resolve() if "wav" in data else None
    if wav is not None and not wav.is_file():
        raise fail("wav", f"no such file {wav}")
    if "barge_in" in data and i == 0:
        raise fail("barge_in", "the first turn has no answer to speak over")
    if "barge_in" in data and "say" not in data and "wav" not in data:
        raise fail("barge_in", "only speech (say or wav) can barge in")
    expect = _expectation(data.get("expect") or {}, lambda f, p: fail(f"expect.{f}", p))
    return Turn(
        index=i + 1,
        line=_line(node, ["turns", i]),
        say=data.get("say"),
        wav=wav,
        text=data.get("text"),
        silence_s=data.get("silence_s"),
        hold_s=float(data.get("hold_s", 0.0)),
        audio=AudioConditions(**data.get("audio", {})),
        barge_in=BargeIn(**data["barge_in"]) if "barge_in" in data else None,
        expect=expect,
    )


def _expectation(data: dict[str, Any], fail: Any) -> Expectation:
    pattern = data.get("agent_matches")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise fail("agent_matches", f"not a regular expression: {exc}") from exc
    tools = data.get("tool", [])
    tools = [tools] if isinstance(tools, dict) else tools
    if tools and data.get("no_tool"):
        raise fail("no_tool", "a turn cannot expect a tool and no tool")
    return Expectation(
        transcript_contains=_words(data.get("transcript_contains")),
        agent_says_any=_words(data.get("agent_says_any")),
        agent_says_all=_words(data.get("agent_says_all")),
        agent_not_says=_words(data.get("agent_not_says")),
        agent_matches=pattern,
        tools=tuple(ToolExpectation(t["name"], dict(t.get("args") or {}), t.get("status", "done")) for t in tools),
        no_tool=bool(data.get("no_tool", False)),
        max_latency_s={str(k): float(v) for k, v in (data.get("max_latency_s") or {}).items()},
        interrupted=data.get("interrupted"),
        agent_silent=bool(data.get("agent_silent", False)),
        judge=data.get("judge"),
    )


def agent_id_of(agent_file: Path) -> str | None:
    """The `agent_id = "..."` an agent class in the file declares (the first one), without running it."""
    match = re.search(r"^\s+agent_id\s*(?::\s*str\s*)?=\s*[\"']([^\"']+)[\"']", agent_file.read_text(), re.M)
    return match.group(1) if match else None
