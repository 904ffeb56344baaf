"""The one check of tool-call arguments (pipeline/tools.py `argument_problems`), and that the tool
choice and the agent gateway both judge arguments by it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from platform_core.gateway.core import GatewayCore
from platform_core.gateway.state import Send
from platform_core.pipeline.tool_choice import parse_tool_choice
from platform_core.pipeline.tools import ToolOutcome, ToolSpec, argument_problems
from platform_core.protocol import GATEWAY_PATH

ALARM = ToolSpec(
    "set_alarm",
    "Set an alarm.",
    {
        "type": "object",
        "properties": {
            "hour": {"type": "integer"},
            "minutes": {"type": "number"},
            "mode": {"type": "string", "enum": ["beep", "radio"]},
            "snooze": {"type": "boolean"},
            "label": {"type": ["string", "null"]},
            "kind": {"const": "alarm"},
            "tags": {"type": "array"},
            "anything": {"type": "some-future-type"},
        },
        "required": ["hour"],
        "additionalProperties": False,
    },
)
OPEN = ToolSpec("get_weather", "Weather.", {"type": "object", "properties": {"location": {"type": "string"}}})


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({}, "missing required argument 'hour'"),
        ({"hour": "7"}, "argument 'hour' must be integer, got str"),
        ({"hour": True}, "argument 'hour' must be integer, got bool"),  # JSON true is not a number
        ({"hour": 7.5}, "argument 'hour' must be integer, got float"),
        ({"hour": 7, "minutes": False}, "argument 'minutes' must be number, got bool"),
        ({"hour": 7, "snooze": 1}, "argument 'snooze' must be boolean, got int"),
        ({"hour": 7, "label": 3}, "argument 'label' must be string or null, got int"),
        ({"hour": 7, "tags": "a,b"}, "argument 'tags' must be array, got str"),
        ({"hour": 7, "mode": "siren"}, "argument 'mode' must be one of ['beep', 'radio'], got 'siren'"),
        ({"hour": 7, "kind": "timer"}, "argument 'kind' must be 'alarm'"),
        ({"hour": 7, "volume": 3}, "unexpected argument 'volume'"),
        ([7], "arguments must be an object, got list"),
    ],
)
def test_each_problem_is_named(arguments: object, problem: str) -> None:
    assert argument_problems(ALARM, arguments) == [problem]


def test_valid_arguments_have_no_problems() -> None:
    valid = {
        "hour": 7,
        "minutes": 30.5,
        "mode": "radio",
        "snooze": False,
        "label": None,
        "kind": "alarm",
        "tags": [],
        "anything": object(),
    }  # an unknown type keyword is not a reason to refuse
    assert argument_problems(ALARM, valid) == []
    assert argument_problems(ALARM, {"hour": 7, "minutes": 30}) == []  # an integer is a number
    assert argument_problems(OPEN, {"location": "Rome", "units": "metric"}) == []  # extras allowed here


def test_every_problem_is_reported() -> None:
    assert argument_problems(ALARM, {"mode": "siren", "snooze": "yes"}) == [
        "missing required argument 'hour'",
        "argument 'mode' must be one of ['beep', 'radio'], got 'siren'",
        "argument 'snooze' must be boolean, got str",
    ]


def test_the_tool_choice_rejects_what_the_check_rejects() -> None:
    assert parse_tool_choice('{"tool":"set_alarm","arguments":{"hour":7,"mode":"siren"}}', [ALARM]) is None
    chosen = parse_tool_choice('{"tool":"set_alarm","arguments":{"hour":7,"mode":"beep"}}', [ALARM])
    assert chosen is not None and chosen.arguments == {"hour": 7, "mode": "beep"}


def test_the_gateway_refuses_what_the_check_rejects_before_reaching_the_agent() -> None:
    core = GatewayCore({"key-acme": "acme"})
    core.start_conversation("c1", None, "acme", 0.0)
    conn, _ = core.open(f"{GATEWAY_PATH}?auth_token=key-acme", "peer", 0.0)
    core.receive(conn, _frame("phx_join", {}), 0.0)
    # The gateway refuses a schema with an unknown type at registration, so this tool leaves that property out.
    properties = {k: v for k, v in ALARM.parameters["properties"].items() if k != "anything"}
    tools = [
        {
            "name": ALARM.name,
            "description": ALARM.description,
            "parameters": {**ALARM.parameters, "properties": properties},
        }
    ]
    core.receive(conn, _frame("register_conversation_tools", {"conversation_id": "c1", "tools": tools}), 0.0)
    outcome, effects = core.start_call("c1", "set_alarm", {"hour": 7, "mode": "siren"}, None, 0.0)
    assert isinstance(outcome, ToolOutcome) and outcome.status == "error"
    assert outcome.error == (
        "invalid arguments for set_alarm: argument 'mode' must be one of ['beep', 'radio'], got 'siren'"
    )
    assert not [e for e in effects if isinstance(e, Send)]  # the agent never saw the call
    pending, effects = core.start_call("c1", "set_alarm", {"hour": 7, "mode": "beep"}, None, 0.0)
    assert not isinstance(pending, ToolOutcome) and [e for e in effects if isinstance(e, Send)]


def _frame(event: str, payload: dict[str, Any]) -> str:
    return json.dumps({"join_ref": None, "ref": "1", "topic": "customer:acme", "event": event, "payload": payload})
