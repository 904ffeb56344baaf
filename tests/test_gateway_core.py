"""The gateway's protocol core, driven directly: no sockets, no event loop."""

from __future__ import annotations

import json
from typing import Any

import pytest

from platform_core.events import AgentConnected, AgentDisconnected, ErrorOccurred, ToolCallUpdated
from platform_core.gateway.core import GatewayCore, sdk_customer_id
from platform_core.gateway.grammar import schema_problem
from platform_core.gateway.state import Close, Effect, Finish, PendingCall, Publish, Send
from platform_core.pipeline.tools import ToolOutcome
from platform_core.protocol import MAX_FRAME_BYTES

KEYS = {"key-acme": "acme", "key-globex": "globex"}
WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
}


def frame(event: str, payload: dict[str, Any] | None = None, topic: str = "customer:acme", ref: str = "1") -> str:
    return json.dumps({"join_ref": None, "ref": ref, "topic": topic, "event": event, "payload": payload or {}})


def sent(effects: list[Effect], conn: str | None = None) -> list[list[Any]]:
    return [json.loads(e.text) for e in effects if isinstance(e, Send) and conn in (None, e.connection_id)]


def finished(effects: list[Effect]) -> list[ToolOutcome]:
    return [e.outcome for e in effects if isinstance(e, Finish)]


def connect(core: GatewayCore, key: str = "key-acme", topic: str = "customer:acme") -> str:
    conn, _ = core.open(f"/customer_sdk/websocket?customer_id=x&auth_token={key}", "peer", 0.0)
    reply = sent(core.receive(conn, frame("phx_join", topic=topic), 0.0))
    assert reply[0][3:] == ["phx_reply", {"status": "ok", "response": {}}]
    return conn


def registered(core: GatewayCore, conversation: str = "c1", customer: str = "acme") -> str:
    core.start_conversation(conversation, "agent-a", customer, 0.0)
    conn = connect(core, "key-acme" if customer == "acme" else "key-globex", f"customer:{customer}")
    effects = core.receive(
        conn,
        frame(
            "register_conversation_tools",
            {"conversation_id": conversation, "tools": [WEATHER]},
            topic=f"customer:{customer}",
        ),
        0.0,
    )
    assert not [m for m in sent(effects) if m[3] == "phx_reply"], sent(effects)
    return conn


def call(core: GatewayCore, conversation: str = "c1", now: float = 0.0) -> tuple[PendingCall, list[Effect]]:
    pending, effects = core.start_call(conversation, "get_weather", {"location": "Lisbon"}, 3, now)
    assert isinstance(pending, PendingCall), pending
    return pending, effects


def test_join_reply_echoes_refs_and_publishes_connected() -> None:
    core = GatewayCore(KEYS)
    conn, _ = core.open("/customer_sdk/websocket?auth_token=key-acme", "peer", 0.0)
    effects = core.receive(
        conn,
        json.dumps({"join_ref": "1", "ref": "2", "topic": "customer:acme", "event": "phx_join", "payload": {}}),
        0.0,
    )
    assert sent(effects) == [["1", "2", "customer:acme", "phx_reply", {"status": "ok", "response": {}}]]
    assert any(isinstance(e, Publish) and isinstance(e.event, AgentConnected) for e in effects)


def test_frame_errors_echo_both_refs() -> None:
    core = GatewayCore(KEYS)
    conn = connect(core)
    refs = {"join_ref": "7", "ref": "8", "topic": "customer:acme"}
    cases = {
        "invalid_frame": {**refs, "event": "", "payload": {}},
        "invalid_payload": {**refs, "event": "tool_call_response", "payload": [1]},
    }
    for code, raw in cases.items():
        [reply] = sent(core.receive(conn, json.dumps(raw), 1.0))
        assert reply[:2] == ["7", "8"] and reply[4]["response"]["code"] == code, (code, reply)


def test_sdk_derived_topic_is_accepted() -> None:
    core = GatewayCore(KEYS)
    connect(core, topic=f"customer:{sdk_customer_id('key-acme')}")


def test_wrong_key_is_refused_at_join_with_unauthorized_and_closed() -> None:
    core = GatewayCore(KEYS)
    conn, _ = core.open("/customer_sdk/websocket?auth_token=nope", "peer", 0.0)
    effects = core.receive(conn, frame("phx_join"), 0.0)
    [reply] = sent(effects)
    assert reply[3] == "phx_reply" and reply[4]["status"] == "error"
    assert "unauthorized" in reply[4]["response"]["reason"] and "invalid_api_key" in reply[4]["response"]["reason"]
    assert any(isinstance(e, Close) and e.code == 1008 for e in effects)


def test_missing_key_names_missing_credentials() -> None:
    core = GatewayCore(KEYS)
    conn, _ = core.open("/customer_sdk/websocket", "peer", 0.0)
    [reply] = sent(core.receive(conn, frame("phx_join"), 0.0))
    assert reply[4]["response"]["reason"].startswith("unauthorized: missing_credentials")


def test_heartbeat_is_answered() -> None:
    core = GatewayCore(KEYS)
    conn = connect(core)
    for topic in ("customer:acme", "phoenix"):
        [reply] = sent(core.receive(conn, frame("heartbeat", topic=topic, ref="9"), 1.0))
        assert reply[1] == "9" and reply[4]["status"] == "ok"


def test_protocol_errors_are_clear_and_keep_the_connection() -> None:
    core = GatewayCore(KEYS)
    conn = connect(core)
    cases = {
        "{not json": "malformed_json",
        "[1, 2]": "invalid_frame",
        frame("dance"): "unknown_event",
        frame(
            "register_conversation_tools", {"conversation_id": "c1", "tools": []}, topic="customer:globex"
        ): "wrong_topic",
        frame("tool_call_response", {"call_id": "call_x", "result": 1}): "unknown_call_id",
        frame("register_conversation_tools", {"conversation_id": "nope", "tools": []}): "unknown_conversation",
        "x" * (MAX_FRAME_BYTES + 1): "frame_too_large",
    }
    for data, code in cases.items():
        effects = core.receive(conn, data, 1.0)
        [reply] = sent(effects)
        assert reply[4]["status"] == "error" and reply[4]["response"]["code"] == code, (code, reply)
        assert not any(isinstance(e, Close) for e in effects)
    assert core.receive(conn, b"\x00binary", 1.0)
    assert conn in core.connections


def register(core: GatewayCore, conn: str, tools: list[Any], conversation: str = "c1") -> list[list[Any]]:
    return sent(
        core.receive(conn, frame("register_conversation_tools", {"conversation_id": conversation, "tools": tools}), 0)
    )


def test_a_bad_tool_is_refused_alone_and_the_others_are_registered() -> None:
    core = GatewayCore(KEYS)
    core.start_conversation("c1", None, "acme", 0.0)
    conn = connect(core)
    strin = {"name": "typo", "parameters": {"type": "object", "properties": {"x": {"type": "strin"}}}}
    bad = [WEATHER, {"name": "bad name!", "parameters": {"type": "object"}}, strin]
    [reply] = [m for m in register(core, conn, bad) if m[3] == "phx_reply"]
    response = reply[4]["response"]
    assert response["code"] == "invalid_tools" and "bad name!" in response["reason"] and "'typo'" in response["reason"]
    assert "the others are registered" in response["reason"]
    assert [r["name"] for r in response["refused"]] == ["tools[1]", "typo"] and response["conversation_id"] == "c1"
    assert [t.name for t in core.tools_for("c1")] == ["get_weather"]
    pending, _ = call(core)
    assert pending.connection_id == conn


def test_a_tools_payload_that_is_not_a_list_is_refused_whole() -> None:
    core = GatewayCore(KEYS)
    core.start_conversation("c1", None, "acme", 0.0)
    conn = connect(core)
    [reply] = register(core, conn, {"name": "x"})  # type: ignore[arg-type]
    assert reply[4]["response"]["code"] == "invalid_tools" and "registration ignored" in reply[4]["response"]["reason"]
    assert core.conversations["c1"].owner is None


def test_a_second_connection_is_refused_and_the_owner_is_told() -> None:
    core = GatewayCore(KEYS)
    owner = registered(core)
    intruder = connect(core)
    hijack = [{**WEATHER, "description": "forged"}]
    effects = core.receive(
        intruder, frame("register_conversation_tools", {"conversation_id": "c1", "tools": hijack}, ref="5"), 1.0
    )
    [reply] = sent(effects, intruder)
    response = reply[4]["response"]
    assert reply[1] == "5" and response["code"] == "conversation_owned" and response["owner"] == owner
    assert "served by another agent connection" in response["reason"] and response["conversation_id"] == "c1"
    [warning] = sent(effects, owner)
    assert warning[3] == "connection_warning" and warning[4]["code"] == "registration_refused"
    assert warning[4]["connection_id"] == intruder and intruder in warning[4]["message"]
    assert any(isinstance(e, Publish) and isinstance(e.event, ErrorOccurred) for e in effects)
    assert core.tools_for("c1")[0].description == "Weather"  # the owner's tools stand
    pending, _ = call(core)
    assert pending.connection_id == owner  # calls still go to the owner only


def test_the_owner_leaving_releases_the_conversation_to_another_connection() -> None:
    core = GatewayCore(KEYS)
    owner = registered(core)
    other = connect(core)
    core.closed(owner, "lost", 1.0)
    assert not [m for m in register(core, other, [WEATHER]) if m[3] == "phx_reply"]
    pending, _ = call(core)
    assert pending.connection_id == other and core.conversations["c1"].owner == other


def test_two_listeners_both_hear_of_a_conversation_and_the_first_to_register_owns_it() -> None:
    core = GatewayCore(KEYS)
    first, second = connect(core), connect(core)
    effects = core.start_conversation("c1", "agent-a", "acme", 0.0)
    assert {e.connection_id for e in effects if isinstance(e, Send)} == {first, second}
    assert register(core, first, [WEATHER]) == []
    assert register(core, second, [WEATHER])[0][4]["response"]["code"] == "conversation_owned"


def test_a_reconnecting_listener_hears_of_conversations_started_while_it_was_away() -> None:
    core = GatewayCore(KEYS)
    listener = connect(core)
    core.start_conversation("c1", "agent-a", "acme", 0.0)
    register(core, listener, [WEATHER])
    core.closed(listener, "lost", 1.0)
    core.start_conversation("c2", "agent-a", "acme", 1.5)  # nobody connected to hear of it
    back, _ = core.open("/customer_sdk/websocket?auth_token=key-acme", "peer", 2.0)
    core.receive(back, frame("phx_join"), 2.0)
    assert [m[3] for m in register(core, back, [WEATHER])] == []  # its own again: no second start notice
    assert not core.connections[back].bound  # still a listener, not a per-conversation instance
    ready = sent(core.tick(3.0), back)
    assert [(m[3], m[4]["conversation_id"]) for m in ready] == [("conversation_ready", "c2")]
    assert sent(core.start_conversation("c3", "agent-a", "acme", 4.0), back)[0][3] == "conversation_ready"


def test_a_listener_refused_while_another_node_owned_hears_again_once_that_owner_is_gone() -> None:
    core = GatewayCore(KEYS)
    core.start_conversation("c1", "agent-a", "acme", 0.0)
    core.served_elsewhere("c1", "gateway node gw-a")
    failed_over = connect(core)  # the agent of gw-a's, reconnected here
    assert register(core, failed_over, [WEATHER])[0][4]["response"]["code"] == "conversation_owned"
    ready = sent(core.served_elsewhere("c1", None), failed_over)
    assert [(m[3], m[4]["conversation_id"]) for m in ready] == [("conversation_ready", "c1")]
    assert not [m for m in register(core, failed_over, [WEATHER]) if m[3] == "phx_reply"]
    assert core.conversations["c1"].owner == failed_over and not core.connections[failed_over].bound
    assert core.served_elsewhere("c1", None) == []  # nothing lifted twice


def test_a_reconnecting_instance_stays_bound() -> None:
    core = GatewayCore(KEYS)
    instance = registered(core, "c1")
    core.closed(instance, "lost", 1.0)
    back = connect(core)
    register(core, back, [WEATHER])
    assert core.connections[back].bound
    assert sent(core.start_conversation("c2", "agent-a", "acme", 2.0), back) == []


def test_conversation_ready_goes_to_listeners_with_agent_id() -> None:
    core = GatewayCore(KEYS)
    listener = connect(core)
    other_customer = connect(core, "key-globex", "customer:globex")
    effects = core.start_conversation("c1", "agent-a", "acme", 0.0)
    [ready] = sent(effects, listener)
    assert ready[3] == "conversation_ready"
    assert ready[4] == {"conversation_id": "c1", "agent_id": "agent-a", "customer_id": "acme"}
    assert sent(effects, other_customer) == []


def test_a_listener_joining_late_hears_of_unserved_conversations() -> None:
    core = GatewayCore(KEYS)
    core.start_conversation("c1", "agent-a", "acme", 0.0)
    core.start_conversation("c2", "agent-a", "acme", 0.0)
    listener = connect(core)
    instance = registered(core, "c2")  # registers at once: a per-conversation instance
    assert sent(core.tick(0.1)) == []
    ready = sent(core.tick(1.0))
    assert [(m[3], m[4]["conversation_id"]) for m in ready] == [("conversation_ready", "c1")]
    assert listener in core.connections and not core.connections[instance].late_check_at


def test_dispatched_instance_gets_lifecycle_started_and_no_other_conversations() -> None:
    core = GatewayCore(KEYS)
    instance = registered(core, "c1")
    assert core.connections[instance].bound
    assert sent(core.start_conversation("c2", "agent-a", "acme", 0.0), instance) == []
    ended = sent(core.end_conversation("c1", 1.0), instance)
    assert ended[0][3] == "conversation_lifecycle" and ended[0][4]["event"] == "conversation_ended"


def test_call_results_correlate_in_any_order() -> None:
    core = GatewayCore(KEYS)
    conn = registered(core)
    first, effects = call(core)
    request = sent(effects)[0]
    assert request[3] == "tool_call_request"
    assert request[4]["timeout_seconds"] == 30.0 and request[4]["call_id"] == first.call_id
    second, _ = call(core)
    assert first.call_id != second.call_id
    out2 = finished(core.receive(conn, frame("tool_call_response", {"call_id": second.call_id, "result": 2}), 1))
    out1 = finished(core.receive(conn, frame("tool_call_response", {"call_id": first.call_id, "result": 1}), 2))
    assert (out1[0].result, out1[0].status, out1[0].duration_s) == (1, "done", 2)
    assert (out2[0].result, out2[0].status) == (2, "done")


def test_tool_error_becomes_error_outcome() -> None:
    core = GatewayCore(KEYS)
    conn = registered(core)
    pending, _ = call(core)
    error = {"call_id": pending.call_id, "error": {"message": "RuntimeError: boom", "timestamp": "t"}}
    [outcome] = finished(core.receive(conn, frame("tool_call_error", error), 0.5))
    assert (outcome.status, outcome.error) == ("error", "RuntimeError: boom")


def test_timeout_then_late_answer_is_dropped_quietly() -> None:
    core = GatewayCore(KEYS, tool_timeouts={"get_weather": 2.0})
    conn = registered(core)
    pending, effects = call(core)
    assert sent(effects)[0][4]["timeout_seconds"] == 2.0
    [outcome] = finished(core.tick(2.5))
    assert outcome.status == "timeout" and "2 s" in (outcome.error or "")
    assert core.receive(conn, frame("tool_call_response", {"call_id": pending.call_id, "result": 1}), 3) == []


def test_disconnect_turns_pending_calls_into_errors_at_once() -> None:
    core = GatewayCore(KEYS)
    conn = registered(core)
    call(core)
    effects = core.closed(conn, "connection lost", 1.0)
    [outcome] = finished(effects)
    assert outcome.status == "error" and "disconnected" in (outcome.error or "")
    assert any(isinstance(e, Publish) and isinstance(e.event, AgentDisconnected) for e in effects)
    failed, _ = core.start_call("c1", "get_weather", {"location": "x"}, None, 2.0)
    assert isinstance(failed, ToolOutcome) and "disconnected" in (failed.error or "")
    assert core.tools_for("c1") == []  # the LLM is no longer offered the vanished agent's tools


def test_reregistration_routes_later_calls_to_the_new_connection() -> None:
    core = GatewayCore(KEYS)
    old = registered(core)
    core.closed(old, "lost", 1.0)
    new = connect(core)
    effects = core.receive(
        new, frame("register_conversation_tools", {"conversation_id": "c1", "tools": [WEATHER]}), 2.0
    )
    assert [m for m in sent(effects) if m[3] == "conversation_lifecycle"] == []  # a reconnect: no 2nd start
    assert [t.name for t in core.tools_for("c1")] == ["get_weather"]
    pending, effects = call(core, now=3.0)
    assert pending.connection_id == new and sent(effects, new)


def test_customers_cannot_see_or_answer_each_other() -> None:
    core = GatewayCore(KEYS)
    registered(core, "c1", "acme")
    intruder = connect(core, "key-globex", "customer:globex")
    topic = "customer:globex"
    [reply] = sent(
        core.receive(
            intruder, frame("register_conversation_tools", {"conversation_id": "c1", "tools": [WEATHER]}, topic), 0
        )
    )
    assert reply[4]["response"]["code"] == "unknown_conversation"
    pending, _ = call(core)
    [reply] = sent(
        core.receive(intruder, frame("tool_call_response", {"call_id": pending.call_id, "result": "forged"}, topic), 0)
    )
    assert reply[4]["response"]["code"] == "unknown_call_id" and pending.call_id in core.calls
    assert [a.customer_id for a in core.snapshot(0)].count("globex") == 1


def test_invalid_arguments_and_unknown_tools_fail_without_reaching_the_agent() -> None:
    core = GatewayCore(KEYS)
    registered(core)
    outcome, effects = core.start_call("c1", "get_weather", {"location": 5}, None, 0)
    assert isinstance(outcome, ToolOutcome) and "must be string" in (outcome.error or "")
    assert sent(effects) == []
    outcome, _ = core.start_call("c1", "fly", {}, None, 0)
    assert isinstance(outcome, ToolOutcome) and "registered: get_weather" in (outcome.error or "")
    statuses = [e.event.status for e in effects if isinstance(e, Publish) and isinstance(e.event, ToolCallUpdated)]
    assert statuses == ["started", "error"]


def test_conversation_end_cancels_pending_calls() -> None:
    core = GatewayCore(KEYS)
    registered(core)
    call(core)
    [outcome] = finished(core.end_conversation("c1", 1.0))
    assert outcome.status == "cancelled"


def test_cancelling_a_turns_calls_tells_their_agent_and_drops_a_late_answer() -> None:
    core = GatewayCore(KEYS)
    conn = registered(core)
    interrupted, _ = call(core)  # turn 3
    other, _ = core.start_call("c1", "get_weather", {"location": "Porto"}, 4, 0.0)
    assert isinstance(other, PendingCall)
    effects = core.cancel_calls("c1", 3, 0.5, "interrupted: caller spoke")
    [outcome] = finished(effects)
    assert (outcome.call_id, outcome.status, outcome.error) == (
        interrupted.call_id,
        "cancelled",
        "interrupted: caller spoke",
    )
    [update] = [e.event for e in effects if isinstance(e, Publish) and isinstance(e.event, ToolCallUpdated)]
    assert update.status == "cancelled" and update.turn_id == 3
    [notice] = sent(effects, conn)
    assert notice[:4] == [None, None, "customer:acme", "tool_call_cancelled"]
    assert notice[4] == {
        "call_id": interrupted.call_id,
        "conversation_id": "c1",
        "tool_name": "get_weather",
        "reason": "interrupted: caller spoke",
    }
    assert list(core.calls) == [other.call_id], "another turn's call goes on"
    late = frame("tool_call_response", {"call_id": interrupted.call_id, "result": {"temperature_c": 21}})
    assert core.receive(conn, late, 2.0) == [], "a result after the cancel is dropped, never published as done"
    assert core.cancel_calls("c1", 3, 2.0, "again") == []


def test_conversation_end_tells_the_agent_of_each_cancelled_call_before_the_end() -> None:
    core = GatewayCore(KEYS)
    conn = registered(core)
    pending, _ = call(core)
    events = [m[3] for m in sent(core.end_conversation("c1", 1.0), conn)]
    assert events == ["tool_call_cancelled", "conversation_lifecycle"], events
    assert pending.call_id not in core.calls


def test_idle_and_unjoined_connections_are_closed() -> None:
    core = GatewayCore(KEYS, idle_timeout_s=5, join_timeout_s=1)
    joined = connect(core)
    silent, _ = core.open("/customer_sdk/websocket?auth_token=key-acme", "peer", 0.0)
    closes = {e.connection_id: e for e in core.tick(2.0) if isinstance(e, Close)}
    assert list(closes) == [silent] and "join_timeout" in closes[silent].reason
    core.receive(joined, frame("heartbeat"), 4.0)
    assert not [e for e in core.tick(8.0) if isinstance(e, Close) and e.connection_id == joined]
    assert [e for e in core.tick(9.5) if isinstance(e, Close) and e.connection_id == joined]


def test_timeouts_default_declared_by_the_agent_or_set_by_the_platform() -> None:
    core = GatewayCore(KEYS, default_tool_timeout_s=30.0)
    core.start_conversation("c1", None, "acme", 0.0)
    conn = connect(core)
    slow = {**WEATHER, "name": "slow", "timeout_seconds": 5}
    core.receive(conn, frame("register_conversation_tools", {"conversation_id": "c1", "tools": [WEATHER, slow]}), 0)
    assert core.timeout_for("c1", "get_weather") == 30.0
    assert core.timeout_for("c1", "slow") == 5.0
    core.tool_timeouts["slow"] = 2.0
    assert core.timeout_for("c1", "slow") == 2.0


def _params(prop: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"x": prop}, "required": ["x"]}


# Each shape below was sent to the real llama-server as part of the tool-choice schema: it refused the
# request (HTTP 400 or a server error mid-stream), or, for the unsatisfiable lengths, hung the generation.
REFUSED_SCHEMAS = {
    "unknown type": (_params({"type": "strin"}), "not a valid JSON Schema at properties/x/type"),
    "unknown type in a list": (_params({"type": ["string", "strin"]}), "not a valid JSON Schema"),
    "type not a string": (_params({"type": 5}), "not a valid JSON Schema"),
    "empty type list": (_params({"type": []}), "not a valid JSON Schema"),
    "empty enum": (_params({"enum": []}), "enum must list at least one value"),
    "enum not a list": (_params({"enum": "x"}), "not a valid JSON Schema"),
    "empty anyOf": (_params({"anyOf": []}), "not a valid JSON Schema"),
    "bad regex": (_params({"type": "string", "pattern": "("}), "not a valid JSON Schema"),
    "local $ref": (
        {"type": "object", "$defs": {"s": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/s"}}},
        "$ref is not supported",
    ),
    "remote $ref": (_params({"$ref": "http://example.com/s.json"}), "$ref is not supported"),
    "$anchor": (_params({"$anchor": "a", "type": "string"}), "$anchor is not supported"),
    "boolean subschema": ({"type": "object", "properties": {"x": True}}, "parameters.properties must map"),
    "nested boolean subschema": (_params({"type": "array", "items": False}), "true/false schemas"),
    "minLength above maxLength": (_params({"type": "string", "minLength": 5, "maxLength": 2}), "no value"),
    "minItems above maxItems": (_params({"type": "array", "minItems": 5, "maxItems": 2}), "no value"),
    "no integer in range": (_params({"type": "integer", "minimum": 1.2, "maximum": 1.7}), "no integer"),
    "huge minLength": (_params({"type": "string", "minLength": 5000}), "too large for the LLM's grammar"),
    "huge minItems": (_params({"type": "array", "minItems": 5000}), "too large"),
    # our own: no call could satisfy these, so the tool could never be called
    "minimum above maximum": (_params({"type": "number", "minimum": 5, "maximum": 1}), "no number"),
    "required but undefined": ({"type": "object", "properties": {}, "required": ["b"]}, "'b' is not in properties"),
    "unknown $schema": ({"$schema": "http://example.com/nope#", "type": "object"}, "$schema"),
}


@pytest.mark.parametrize("case", REFUSED_SCHEMAS)
def test_tool_schemas_the_llm_grammar_rejects_are_refused_at_registration(case: str) -> None:
    parameters, reason = REFUSED_SCHEMAS[case]
    core = GatewayCore(KEYS)
    core.start_conversation("c1", None, "acme", 0.0)
    conn = connect(core)
    [reply] = [
        m for m in register(core, conn, [WEATHER, {"name": "bad", "parameters": parameters}]) if m[3] == "phx_reply"
    ]
    assert reply[4]["response"]["refused"][0]["name"] == "bad"
    assert reason in reply[4]["response"]["refused"][0]["reason"], reply[4]["response"]
    assert [t.name for t in core.tools_for("c1")] == ["get_weather"]


@pytest.mark.parametrize(
    "parameters",
    [
        _params({"type": ["string", "null"]}),
        _params({"enum": ["a", 1, None]}),
        _params({"type": "string", "format": "date", "pattern": "^[0-9-]+$", "maxLength": 50000}),
        _params({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}),
        _params({"type": "array", "items": {"type": "object", "properties": {"n": {"type": "number"}}}}),
        _params({"type": "integer", "minimum": 1, "maximum": 1}),
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {}},
        {"type": "object", "properties": {}},
    ],
)
def test_tool_schemas_the_llm_grammar_compiles_are_accepted(parameters: dict[str, Any]) -> None:
    assert schema_problem(parameters) is None


def test_the_owner_is_told_once_per_refused_connection() -> None:
    core = GatewayCore(KEYS)
    owner = registered(core)
    intruder = connect(core)
    warnings = [
        m
        for _ in range(5)
        for m in sent(
            core.receive(intruder, frame("register_conversation_tools", {"conversation_id": "c1", "tools": []}), 1),
            owner,
        )
    ]
    assert len(warnings) == 1
