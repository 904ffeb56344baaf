"""Tool choice: schema, validation and parsing (pure), then real choices by the embedded 0.5B model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from platform_core.engines.base import ChatMessage
from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM
from platform_core.pipeline.tool_choice import (
    ToolChoice,
    choose_tool,
    name_aliases,
    parse_tool_choice,
    prefilled_choice_grammar,
    tool_choice_messages,
    tool_choice_schema,
)
from platform_core.pipeline.tools import ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather for a location.",
    {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)
BOOK = ToolSpec(
    "book_appointment",
    "Book an appointment for a date and time.",
    {
        "type": "object",
        "properties": {"date": {"type": "string"}, "time": {"type": "string"}},
        "required": ["date", "time"],
    },
)
LOOKUP = ToolSpec(
    "lookup_customer",
    "Look up a customer by their customer id.",
    {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
)
TOOLS = [WEATHER, BOOK, LOOKUP]


def test_schema_offers_each_tool_with_its_arguments_and_none() -> None:
    branches = tool_choice_schema(TOOLS)["anyOf"]
    assert [b["properties"]["tool"]["const"] for b in branches] == [*(t.name for t in TOOLS), "none"]
    weather = branches[0]["properties"]["arguments"]
    assert weather["required"] == ["location"] and weather["additionalProperties"] is False
    assert weather["properties"]["location"]["minLength"] == 1  # an empty required string is no answer
    assert "minLength" not in WEATHER.parameters["properties"]["location"]  # the registered spec is untouched
    assert branches[-1]["required"] == ["tool"]


def test_fixed_prompt_prefix_is_the_same_every_turn() -> None:
    first = tool_choice_messages([ChatMessage("user", "hi")], TOOLS)
    later = tool_choice_messages(
        [ChatMessage("user", "hi"), ChatMessage("assistant", "Hello!"), ChatMessage("user", "weather in Rome?")], TOOLS
    )
    assert first[:-1] == later[:-1]  # only the last message changes: the KV cache prefix is reused
    assert later[-1].content.endswith("User: weather in Rome?")


@pytest.mark.parametrize(
    "text",
    [
        '{"tool":"delete_everything","arguments":{}}',  # not registered
        '{"tool":"get_weather","arguments":{}}',  # missing argument
        '{"tool":"get_weather","arguments":{"location":42}}',  # wrong type
        '{"tool":"get_weather"}',  # no arguments at all
        '{"tool":"get_weather","arguments":{"location":"Paris"',  # truncated JSON
        '["get_weather"]',
        "",
    ],
)
def test_invalid_choices_are_rejected(text: str, caplog: pytest.LogCaptureFixture) -> None:
    assert parse_tool_choice(text, TOOLS) is None
    assert "tool choice rejected" in caplog.text


def test_valid_and_none_choices() -> None:
    text = '{"tool":"get_weather","arguments":{"location":"Paris"}}'
    assert parse_tool_choice(text, TOOLS) == ToolChoice("get_weather", {"location": "Paris"})
    assert parse_tool_choice('{"tool":"none"}', TOOLS) is None


def test_invented_arguments_are_rejected(caplog: pytest.LogCaptureFixture) -> None:
    said = "User: What's the capital of France?"
    assert parse_tool_choice('{"tool":"lookup_customer","arguments":{"id":"1"}}', TOOLS, said) is None
    assert "not found in the conversation" in caplog.text
    said = "User: Can I get a slot on March 5th at 10:30?"
    text = '{"tool":"book_appointment","arguments":{"date":"2025-03-05","time":"10:30"}}'
    assert parse_tool_choice(text, TOOLS, said) == ToolChoice(
        "book_appointment", {"date": "2025-03-05", "time": "10:30"}
    )


def test_a_normalised_name_is_still_grounded() -> None:
    said = "User: What is the weather in Lisbon right now?"
    text = '{"tool":"get_weather","arguments":{"location":"Lisboa"}}'
    assert parse_tool_choice(text, TOOLS, said) == ToolChoice("get_weather", {"location": "Lisboa"})
    assert parse_tool_choice('{"tool":"get_weather","arguments":{"location":"Berlin"}}', TOOLS, said) is None


async def test_no_tools_means_no_model_call() -> None:
    unstarted = EmbeddedLlamaLLM.__new__(EmbeddedLlamaLLM)  # would raise if it were asked anything
    assert await choose_tool(unstarted, [ChatMessage("user", "weather in Rome?")], []) is None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llm() -> AsyncIterator[EmbeddedLlamaLLM]:
    from platform_core.models import ensure_model

    engine = EmbeddedLlamaLLM(ensure_model("qwen2.5-coder-0.5b-instruct"), threads=2)
    await engine.start()
    yield engine
    await engine.aclose()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_model_picks_weather_for_san_francisco(llm: EmbeddedLlamaLLM) -> None:
    choice = await choose_tool(llm, [ChatMessage("user", "What's the weather in San Francisco?")], TOOLS)
    assert choice == ToolChoice("get_weather", {"location": "San Francisco"})


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_model_picks_no_tool_for_arithmetic(llm: EmbeddedLlamaLLM) -> None:
    assert await choose_tool(llm, [ChatMessage("user", "what is two plus two")], TOOLS) is None


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_model_uses_the_conversation_after_a_tool_result(llm: EmbeddedLlamaLLM) -> None:
    history = [
        ChatMessage("user", "Look up customer 4521."),
        ChatMessage("tool", '{"tool": "lookup_customer", "result": {"name": "Ada"}}'),
    ]
    # The customer was looked up; the remaining tools do not fit the request.
    assert await choose_tool(llm, history, [WEATHER, BOOK]) is None


@pytest.mark.parametrize(
    ("said", "tool", "arguments"),
    [
        (
            "Please book an appointment for tomorrow at ten.",
            "book_appointment",
            {"date": "2026-12-03", "time": "10:00"},
        ),
        (
            "Book me in for Friday at three in the afternoon.",
            "book_appointment",
            {"date": "2026-12-04", "time": "15:00"},
        ),
        ("Can you look up customer number forty two?", "lookup_customer", {"id": "42"}),
    ],
)
def test_spoken_numbers_and_days_ground_the_values_the_model_wrote(said: str, tool: str, arguments: dict) -> None:  # type: ignore[type-arg]
    text = json.dumps({"tool": tool, "arguments": arguments})
    assert parse_tool_choice(text, TOOLS, f"User: {said}") == ToolChoice(tool, arguments)


def test_a_day_word_does_not_ground_an_invented_hour() -> None:
    text = '{"tool":"book_appointment","arguments":{"date":"2026-12-02","time":"19:00"}}'
    assert parse_tool_choice(text, TOOLS, "User: What should I cook for dinner tonight?") is None


def test_the_tool_prompt_tells_the_model_todays_date() -> None:
    import datetime

    [system, *_] = tool_choice_messages([ChatMessage("user", "book me for tomorrow")], TOOLS)
    assert datetime.date.today().isoformat() in system.content


class CountingLLM:
    """The real engine, counting the deltas each request streamed before it was closed."""

    def __init__(self, inner: EmbeddedLlamaLLM) -> None:
        self.inner = inner
        self.llguidance = inner.llguidance
        self.deltas: list[int] = []

    async def stream_chat(self, messages: list[ChatMessage], **kwargs: object) -> AsyncIterator[str]:
        self.deltas.append(0)
        async for delta in self.inner.stream_chat(messages, **kwargs):  # type: ignore[arg-type]
            self.deltas[-1] += 1
            yield delta


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_no_tool_is_known_at_the_first_token_after_the_prefill(llm: EmbeddedLlamaLLM) -> None:
    counting = CountingLLM(llm)
    assert llm.llguidance, "the bundled llama.cpp should read llguidance grammars"
    assert await choose_tool(counting, [ChatMessage("user", "thank you, bye")], TOOLS) is None  # type: ignore[arg-type]
    choice = await choose_tool(counting, [ChatMessage("user", "Look up customer 4521.")], TOOLS)  # type: ignore[arg-type]
    assert choice == ToolChoice("lookup_customer", {"id": "4521"})
    assert counting.deltas[0] == 1, "the stream should stop at the first token that rules out every tool"
    assert counting.deltas[1] > 3


class ScriptedChoice:
    """A stand-in for the grammar-constrained engine (the real one cannot be made to write a chosen text)."""

    llguidance = True

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.messages: list[ChatMessage] = []
        self.streamed = 0

    async def stream_chat(self, messages: list[ChatMessage], **kwargs: object) -> AsyncIterator[str]:
        self.messages = messages
        for delta in self.deltas:
            self.streamed += 1
            yield delta


async def test_a_tool_name_that_extends_another_is_read_to_its_end() -> None:
    short = ToolSpec("lookup", "Look a word up.", {"type": "object", "properties": {"word": {"type": "string"}}})
    scripted = ScriptedChoice(["look", "up", "_customer", '","arguments":{"id":"7"}}'])
    choice = await choose_tool(scripted, [ChatMessage("user", "customer 7 please")], [short, LOOKUP])  # type: ignore[arg-type]
    assert choice == ToolChoice("lookup_customer", {"id": "7"})
    assert scripted.messages[-1] == ChatMessage("assistant", '{"tool":"'), "the answer's fixed start is a prefill"


async def test_a_call_is_dropped_at_its_first_invented_argument() -> None:
    args = ["date", '":"', "2026-12-04", '","', "time", '":"', "14:00", '"', "}}"]
    deltas = ["book", "_appointment", '","arguments":{"', *args]
    scripted = ScriptedChoice(deltas)
    history = [ChatMessage("user", "Recommend a good book for tomorrow.")]
    assert await choose_tool(scripted, history, [BOOK]) is None  # type: ignore[arg-type]
    assert scripted.streamed == 11, "the stream stops once the hour, said nowhere, is written"


async def test_on_call_is_told_when_a_tool_is_named_and_not_for_no_tool() -> None:
    calls: list[str] = []
    naming = ScriptedChoice(["lookup", "_customer", '","arguments":{"id":"7"}}'])
    await choose_tool(naming, [ChatMessage("user", "customer 7")], [LOOKUP], on_call=lambda: calls.append("call"))  # type: ignore[arg-type]
    assert calls == ["call"]
    declining = ScriptedChoice(["none", '"}'])
    await choose_tool(declining, [ChatMessage("user", "hi")], [LOOKUP], on_call=lambda: calls.append("none"))  # type: ignore[arg-type]
    assert calls == ["call"]


async def test_a_broken_escape_in_an_argument_is_left_to_the_json_check() -> None:
    scripted = ScriptedChoice(["lookup", "_customer", '","arguments":{"id":"\\u12"}}'])
    assert await choose_tool(scripted, [ChatMessage("user", "customer 12")], [LOOKUP]) is None  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_question_about_rain_calls_the_weather_tool(llm: EmbeddedLlamaLLM) -> None:
    """The model's first choice is "weather" (p 0.50), not "get" (0.05): with only full names allowed it
    chose "none" (0.19) and the answer was invented; the alias lets it name the tool as it would."""
    choice = await choose_tool(llm, [ChatMessage("user", "Is it going to rain in Berlin today?")], TOOLS)
    assert choice == ToolChoice("get_weather", {"location": "Berlin"})
    assert await choose_tool(llm, [ChatMessage("user", "Hello, how are you today?")], TOOLS) is None


def test_a_tool_named_verb_thing_may_be_written_as_its_thing_when_that_is_unambiguous() -> None:
    assert name_aliases(TOOLS) == {"weather": "get_weather", "customer": "lookup_customer"}  # book_ is no verb
    fetch = ToolSpec("fetch_weather", "Another weather tool.", WEATHER.parameters)
    assert "weather" not in name_aliases([WEATHER, fetch])  # two tools would share it: neither gets it
    plain = ToolSpec("weather", "A tool named weather.", WEATHER.parameters)
    assert name_aliases([WEATHER, plain]) == {}  # a tool's own name is never another's alias
    grammar = prefilled_choice_grammar(TOOLS)
    assert json.dumps('weather","arguments":') in grammar and json.dumps('get_weather","arguments":') in grammar


async def test_a_tool_written_by_its_alias_is_the_tool() -> None:
    scripted = ScriptedChoice(["weather", '","arguments":{"location":"', "Berlin", '"}}'])
    choice = await choose_tool(scripted, [ChatMessage("user", "rain in Berlin?")], TOOLS)  # type: ignore[arg-type]
    assert choice == ToolChoice("get_weather", {"location": "Berlin"})
    invented = ScriptedChoice(["weather", '","arguments":{"location":"', "Paris", '"}}'])
    assert await choose_tool(invented, [ChatMessage("user", "hi there")], TOOLS) is None  # type: ignore[arg-type]
    assert invented.streamed == 4, "grounding reads the alias's arguments too: stopped at the invented city's quote"
