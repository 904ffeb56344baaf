"""Reliable tool choice for small local models: few-shot prompt + JSON-schema-constrained output.

Native `tools=` calling on a 0.5B model calls tools for "2+2" and invents tool names. Here the
model must answer with JSON matching a schema built from the registered tools: either
{"tool": "none"} or {"tool": <one registered name>, "arguments": <that tool's parameters>}.
The grammar makes unknown names impossible; the result is still validated against the registered
schema before routing, because not every server enforces every keyword (and Ollama may ignore it).

With the embedded llama.cpp the answer's fixed start `{"tool":"` is written into the prompt (a prefill,
processed in one batch instead of five decoding steps) and an llguidance grammar constrains the rest; the
stream stops at the first token that rules out every tool, so "no tool" costs one decoding step
(measured: 0.13-0.20 s against 0.33-0.40 s for the full JSON, bench/llm_tool_choice.py).

The spoken answer is produced afterwards by a normal streamed reply; after a tool ran, its result is
in the conversation's history (pipeline/responder.py), so the reply path is the same with or without tools.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from platform_core.engines.base import ChatMessage, LanguageModel
from platform_core.pipeline.grounding import ungrounded_arguments
from platform_core.pipeline.tools import ToolSpec, argument_problems

log = logging.getLogger(__name__)

NO_TOOL = "none"
HISTORY_MESSAGES = 4  # the last few turns give context ("and tomorrow?") at little prompt cost


@dataclass(frozen=True)
class ToolChoice:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Generation-only tightening: no extra properties, required strings non-empty."""
    tight: dict[str, Any] = copy.deepcopy(schema) if schema else {}
    tight.setdefault("type", "object")
    props: dict[str, Any] = tight.setdefault("properties", {})
    tight["additionalProperties"] = False
    for name in tight.get("required", []):
        prop = props.get(name)
        if isinstance(prop, dict) and prop.get("type") == "string" and "enum" not in prop:
            prop.setdefault("minLength", 1)
    return tight


def tool_choice_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """anyOf: one branch per registered tool with its argument schema, plus {"tool": "none"}."""
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": spec.name}, "arguments": _strict(spec.parameters)},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for spec in tools
    ]
    branches.append(
        {
            "type": "object",
            "properties": {"tool": {"const": NO_TOOL}},
            "required": ["tool"],
            "additionalProperties": False,
        }
    )
    return {"anyOf": branches}


def _signature(spec: ToolSpec) -> str:
    props = spec.parameters.get("properties", {}) if spec.parameters else {}
    return f"{spec.name}({', '.join(props)}): {spec.description.strip()}"


# Fixed text first and the per-turn text last, so the server reuses the KV cache of the prefix.
# The examples use a tool that is never registered: they teach the format, and the grammar makes
# it impossible to pick. Measured variants are in bench/llm_tool_choice.py's docstring.
_INSTRUCTIONS = (
    "You route requests of a voice assistant to tools. Reply with JSON only.\n"
    'If the user\'s last message asks for what a tool does, reply {"tool":"<name>","arguments":{...}} '
    "with argument values copied from the user's words.\n"
    'Otherwise (greetings, thanks, jokes, math, general questions) reply {"tool":"none"}.\n'
    "Tools:\n"
)
_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("User: play some jazz in the kitchen", '{"tool":"play_music","arguments":{"genre":"jazz","room":"kitchen"}}'),
    ("User: what is 5 plus 7?", '{"tool":"none"}'),
    ("User: thank you!", '{"tool":"none"}'),
)
_SPEAKER = {"user": "User", "assistant": "Assistant", "tool": "Tool result", "system": "System"}


def tool_choice_messages(history: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> list[ChatMessage]:
    # Today's date lets the model turn "tomorrow" into a date argument; the prefix changes once a day.
    today = datetime.date.today().strftime("%A, %Y-%m-%d")
    system = _INSTRUCTIONS + "\n".join(f"- {_signature(s)}" for s in tools) + f"\nToday is {today}."
    messages = [ChatMessage("system", system)]
    for user, answer in _EXAMPLES:
        messages += [ChatMessage("user", user), ChatMessage("assistant", answer)]
    messages.append(ChatMessage("user", _transcript(history)))
    return messages


def _transcript(history: Sequence[ChatMessage]) -> str:
    recent = [m for m in history if m.role != "system"][-HISTORY_MESSAGES:]
    return "\n".join(f"{_SPEAKER[m.role]}: {m.content}" for m in recent)


def parse_tool_choice(text: str, tools: Sequence[ToolSpec], context: str | None = None) -> ToolChoice | None:
    """The validated choice in the model's JSON answer; None for "none" or anything invalid.

    With `context` (what was said), a choice whose required string arguments appear nowhere in it
    is rejected as invented."""
    try:
        data = json.loads(text)
    except ValueError:
        log.warning("tool choice rejected: not JSON: %.200r", text)
        return None
    if not isinstance(data, dict):
        log.warning("tool choice rejected: not an object: %.200r", text)
        return None
    name = data.get("tool")
    if name == NO_TOOL:
        return None
    spec = next((s for s in tools if s.name == name), None)
    if spec is None:
        log.warning("tool choice rejected: unknown tool %r", name)
        return None
    args = data.get("arguments", {})
    problems = argument_problems(spec, args)
    if problems:
        log.warning("tool choice rejected: %s: %s", name, "; ".join(problems))
        return None
    invented = ungrounded_arguments(spec, args, context) if context is not None else []
    if invented:
        log.warning("tool choice rejected: %s: %s not found in the conversation", name, ", ".join(invented))
        return None
    return ToolChoice(spec.name, dict(args))


PREFILL = '{"tool":"'
# A tool named verb_thing may be written as just its thing: asked "is it going to rain in Berlin?", the
# 0.5B model's first choice after the prefill is "weather" (p 0.50), not "get" (0.05); with only the full
# names allowed, "none" (0.19) won and the answer was invented. The alias names the same tool.
_ALIAS_VERBS = frozenset({"get", "fetch", "check", "find", "lookup", "search", "query", "read", "show"})


def name_aliases(tools: Sequence[ToolSpec]) -> dict[str, str]:
    """Each tool's short name (get_weather -> weather) where it is unambiguous: alias -> tool name."""
    names = {spec.name for spec in tools} | {NO_TOOL}
    aliases: dict[str, str] = {}
    for spec in tools:
        verb, _, thing = spec.name.partition("_")
        if verb in _ALIAS_VERBS and thing and thing not in names:
            aliases[thing] = "" if thing in aliases else spec.name  # two tools share it: neither gets it
    return {alias: name for alias, name in aliases.items() if name}


def _written_names(tools: Sequence[ToolSpec]) -> dict[str, ToolSpec]:
    """Every name the model may write for a tool (its own, and its alias), with the tool."""
    by_name = {spec.name: spec for spec in tools}
    return by_name | {alias: by_name[name] for alias, name in name_aliases(tools).items()}


def prefilled_choice_grammar(tools: Sequence[ToolSpec]) -> str:
    """The llguidance grammar of the answer after PREFILL: `none"}` or `<name>","arguments":{...}}`, the
    name a tool's own or its alias."""
    choices = [json.dumps(NO_TOOL + '"}')]
    rules = []
    index = {spec.name: i for i, spec in enumerate(tools)}
    for written, spec in _written_names(tools).items():
        after_name = written + '","arguments":'
        choices.append(f'{json.dumps(after_name)} args{index[spec.name]} "}}"')
    for i, spec in enumerate(tools):
        rules.append(f"args{i}: %json {json.dumps(_strict(spec.parameters))}")
    return "%llguidance {}\nstart: " + " | ".join(choices) + "\n" + "\n".join(rules) + "\n"


def _reads_llguidance(llm: LanguageModel) -> bool:
    """Whether `llm` takes an llguidance grammar (the embedded llama.cpp sets `llguidance` when it starts)."""
    return getattr(llm, "llguidance", False) is True


def _request(
    llm: LanguageModel, history: Sequence[ChatMessage], tools: Sequence[ToolSpec], max_tokens: int
) -> AsyncIterator[str]:
    """The tool-choice request: prefilled with a grammar where the engine reads llguidance, else a JSON schema."""
    messages = tool_choice_messages(history, tools)
    if _reads_llguidance(llm):
        grammar = prefilled_choice_grammar(tools)
        messages.append(ChatMessage("assistant", PREFILL))
        return llm.stream_chat(messages, grammar=grammar, max_tokens=max_tokens, temperature=0.0)
    return llm.stream_chat(messages, json_schema=tool_choice_schema(tools), max_tokens=max_tokens, temperature=0.0)


async def warm_tool_choice(llm: LanguageModel, tools: Sequence[ToolSpec], history: Sequence[ChatMessage]) -> None:
    """Send the tool-choice request once, for one token: its fixed prefix lands in the KV cache and the
    server compiles its grammar (measured: the first request with a new grammar took 0.75 s longer)."""
    async for _ in _request(llm, history, tools, 1):
        pass


async def _prefilled_answer(
    llm: LanguageModel,
    history: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    max_tokens: int,
    on_call: Callable[[], object] | None,
) -> str:
    """The choice's JSON, generated after PREFILL; stopped as soon as its start matches no tool's name, or
    an argument it wrote is one the conversation does not ground (parse_tool_choice would reject it)."""
    stream = _request(llm, history, tools, max_tokens)
    context = _transcript(history)
    names = _written_names(tools)
    text = ""
    try:
        async for delta in stream:
            text += delta
            if text and not any(name.startswith(text) or text.startswith(name) for name in names):
                return PREFILL + NO_TOOL + '"}'  # the grammar allows nothing else
            if on_call is not None and text and not NO_TOOL.startswith(text):
                on_call()  # a tool is being named
                on_call = None
            if '"' in delta and _invented_so_far(text, names, context):
                return PREFILL + NO_TOOL + '"}'  # small talk read as a call: its arguments are made up
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()  # stops the generation now
    written = next((name for name in names if text.startswith(name + '"')), None)
    if written is not None:
        text = names[written].name + text[len(written) :]  # an alias: the tool's own name
    return PREFILL + text


_STRING_ARGUMENT = re.compile(r'"(\w+)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _invented_so_far(text: str, names: Mapping[str, ToolSpec], context: str) -> bool:
    """Whether a string argument written so far (after the tool's name) is grounded nowhere in `context`."""
    name = next((n for n in names if text.startswith(n + '"')), None)
    if name is None:
        return False
    spec = names[name]
    written: dict[str, str] = {}
    for match in _STRING_ARGUMENT.finditer(text, len(name)):
        with contextlib.suppress(ValueError):  # a broken escape: parse_tool_choice judges the whole JSON
            written[match[1]] = json.loads(f'"{match[2]}"')
    invented = ungrounded_arguments(spec, written, context)
    if invented:
        log.info("tool choice stopped: %s: %s not found in the conversation", spec.name, ", ".join(invented))
    return bool(invented)


async def choose_tool(
    llm: LanguageModel,
    history: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    *,
    max_tokens: int = 80,
    on_call: Callable[[], object] | None = None,
) -> ToolChoice | None:
    """The tool to call for the last user message, or None (reply without a tool / invalid choice).
    `on_call` is called as soon as the model starts naming a tool (with the prefilled request only)."""
    if not tools or not any(m.role == "user" for m in history):
        return None
    if _reads_llguidance(llm):
        text = await _prefilled_answer(llm, history, tools, max_tokens, on_call)
    else:
        text = "".join([delta async for delta in _request(llm, history, tools, max_tokens)])
    return parse_tool_choice(text, tools, _transcript(history))
