"""LLM backends against the real embedded llama.cpp model and its real HTTP server (no fakes)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from platform_core.config import EngineConfig
from platform_core.engines.base import ChatMessage, EngineUnavailable
from platform_core.engines.llm import LLMError, create_llm
from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM
from platform_core.engines.llm.ollama import OllamaLLM
from platform_core.engines.llm.openai_compat import OpenAICompatibleLLM, _parse_sse_line, _root_url

MODEL_ID = "qwen2.5-coder-0.5b-instruct"
API_KEY = "test-key-123"
HELLO = [
    ChatMessage("system", "You are a helpful voice assistant. Answer in one short sentence."),
    ChatMessage("user", "Say hello."),
]


def model_path() -> Path:
    from platform_core.models import ensure_model

    return ensure_model(MODEL_ID)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def collect(stream: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in stream]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def llm() -> AsyncIterator[EmbeddedLlamaLLM]:
    engine = EmbeddedLlamaLLM(model_path(), threads=2, context=2048, api_key=API_KEY)
    await engine.start()
    yield engine
    await engine.aclose()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_streaming_reply_returns_text_deltas(llm: EmbeddedLlamaLLM) -> None:
    deltas = await collect(llm.stream_chat(HELLO, max_tokens=24, temperature=0.0))
    assert len(deltas) > 1  # streamed, not one block
    assert "hello" in "".join(deltas).lower()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_json_schema_output_is_valid_json_matching_the_schema(llm: EmbeddedLlamaLLM) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}, "sky": {"enum": ["sun", "rain"]}},
        "required": ["city", "celsius", "sky"],
        "additionalProperties": False,
    }
    messages = [ChatMessage("user", "Invent today's weather for Oslo as JSON.")]
    data = json.loads("".join(await collect(llm.stream_chat(messages, json_schema=schema, max_tokens=60))))
    assert set(data) == {"city", "celsius", "sky"}
    assert isinstance(data["city"], str) and isinstance(data["celsius"], int) and data["sky"] in ("sun", "rain")


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_abandoned_stream_frees_the_slot(llm: EmbeddedLlamaLLM) -> None:
    story = [ChatMessage("user", "Tell a very long story about a dragon.")]
    async for _ in llm.stream_chat(story, max_tokens=400):
        break  # barge-in: the consumer stops after the first delta
    started = time.perf_counter()
    await collect(llm.stream_chat(HELLO, max_tokens=4))
    # Had the abandoned reply kept generating, this would wait ~400 tokens (over 10 s).
    assert time.perf_counter() - started < 6.0


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_openai_compatible_client_against_the_embedded_http_server(llm: EmbeddedLlamaLLM) -> None:
    client = OpenAICompatibleLLM(llm.base_url + "/v1/", model=model_path().stem, api_key=API_KEY, name="t")
    await client.start()
    try:
        assert client.base_url == llm.base_url
        text = "".join(await collect(client.stream_chat(HELLO, max_tokens=16, temperature=0.0)))
        assert text.strip()
    finally:
        await client.aclose()


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_wrong_api_key_names_the_setting(llm: EmbeddedLlamaLLM) -> None:
    client = OpenAICompatibleLLM(llm.base_url, model="", api_key="wrong-key")
    with pytest.raises(EngineUnavailable, match="rejected the API key") as err:
        await client.start()
    assert "llm_api_key" in err.value.hint


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_unknown_model_lists_the_available_ones(llm: EmbeddedLlamaLLM) -> None:
    client = OpenAICompatibleLLM(llm.base_url, model="gpt-9", api_key=API_KEY)
    with pytest.raises(EngineUnavailable, match="no model 'gpt-9'") as err:
        await client.start()
    assert model_path().stem in err.value.hint


async def test_wrong_url_is_a_clear_error_and_does_not_hang() -> None:
    client = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}", model="m", connect_timeout_s=2.0)
    started = time.perf_counter()
    with pytest.raises(EngineUnavailable, match="Cannot reach the LLM server") as err:
        await client.start()
    assert "llm_url" in err.value.hint
    assert time.perf_counter() - started < 3.0


async def test_stream_before_start_is_an_error() -> None:
    with pytest.raises(LLMError, match="start"):
        await collect(OpenAICompatibleLLM("http://127.0.0.1:1", model="m").stream_chat(HELLO))


async def test_ollama_unreachable_gives_the_clear_error() -> None:
    # Ollama cannot be installed here; this is the real client against a port nobody listens on.
    engine = OllamaLLM("qwen2.5:0.5b", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineUnavailable, match=r"Cannot reach Ollama at http://127\.0\.0\.1:") as err:
        await engine.start()
    assert err.value.hint == "start `ollama serve` or change the LLM setting"


async def test_embedded_missing_model_file() -> None:
    with pytest.raises(EngineUnavailable, match="model file not found"):
        await EmbeddedLlamaLLM(Path("/nonexistent/model.gguf")).start()


def test_create_llm_picks_the_backend(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    embedded = create_llm(EngineConfig(llm="embedded", llm_model=str(gguf), llm_threads=1, llm_context=512))
    assert isinstance(embedded, EmbeddedLlamaLLM)
    assert (embedded.model_path, embedded.threads, embedded.context) == (gguf, 1, 512)
    assert isinstance(create_llm(EngineConfig(llm="embedded")), EmbeddedLlamaLLM)  # via ensure_model
    ollama = create_llm(EngineConfig(llm="ollama", llm_model="llama3.2"))
    assert isinstance(ollama, OllamaLLM) and ollama.host == "http://127.0.0.1:11434"
    openai = create_llm(EngineConfig(llm="openai", llm_url="http://h:1/v1", llm_model="x", llm_api_key="k"))
    assert isinstance(openai, OpenAICompatibleLLM) and openai.base_url == "http://h:1"
    with pytest.raises(EngineUnavailable, match="No URL"):
        create_llm(EngineConfig(llm="openai"))


def test_sse_parsing() -> None:
    chunk = {"choices": [{"delta": {"content": "Hi"}}]}
    assert _parse_sse_line("data: " + json.dumps(chunk)) == "Hi"
    assert _parse_sse_line("data: [DONE]") == ""
    assert _parse_sse_line(": keep-alive") == ""
    assert _parse_sse_line('data: {"choices":[{"delta":{"role":"assistant","content":null}}]}') == ""
    with pytest.raises(LLMError, match="boom"):
        _parse_sse_line('data: {"error": {"message": "boom"}}')
    assert _root_url(" http://x:8080/v1/ ") == "http://x:8080"
