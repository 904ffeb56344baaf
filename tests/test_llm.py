"""LLM backends against the real embedded llama.cpp model and its real HTTP server (no fakes)."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

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
async def test_requests_cancelled_at_any_moment_leave_no_connection_behind(llm: EmbeddedLlamaLLM) -> None:
    # Barge-ins and hang-ups cancel requests at any point, also between connecting and sending, where
    # httpcore 1.0.9 would keep the connection forever (measured before the fix: 9 sockets held after 200).
    async def consume() -> None:
        async for _ in llm.stream_chat(HELLO, max_tokens=8):
            pass

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    await collect(llm.stream_chat(HELLO, max_tokens=2))  # the pool's own kept-alive connection
    before = open_fds()
    for i in range(200):
        task = asyncio.ensure_future(consume())
        await asyncio.sleep((i % 10) * 0.0003)  # cancelled before, during and after the connection is made
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.5)  # the orphans' sockets finish closing
    assert open_fds() - before <= 1, (before, open_fds())
    assert "".join(await collect(llm.stream_chat(HELLO, max_tokens=4))).strip()  # and the LLM still answers


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


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process: R running, S sleeping, T stopped, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def settled_state(pid: int, timeout: float = 1.0) -> str:
    """The state once a stop or continue signal has been delivered (that takes a moment)."""
    deadline = time.monotonic() + timeout
    state = process_state(pid)
    while state in "RD" and time.monotonic() < deadline:
        time.sleep(0.005)
        state = process_state(pid)
    return state


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_a_paused_server_generates_nothing_until_resumed(llm: EmbeddedLlamaLLM) -> None:
    assert llm.server_pid is not None
    received: list[str] = []
    first_delta = asyncio.Event()

    async def consume() -> None:
        async for delta in llm.stream_chat([ChatMessage("user", "Count from one to twenty in words.")], max_tokens=60):
            received.append(delta)
            first_delta.set()

    reader = asyncio.ensure_future(consume())
    await first_delta.wait()
    llm.pause()
    llm.pause()  # nested: e.g. two conversations synthesizing at once
    try:
        assert settled_state(llm.server_pid) == "T"
        await asyncio.sleep(0.3)  # deltas already in the socket may still arrive
        so_far = len(received)
        await asyncio.sleep(1.0)
        assert len(received) == so_far and not reader.done()
        llm.resume()
        assert process_state(llm.server_pid) == "T"  # one pause is still held
    finally:
        llm.resume()
    await asyncio.sleep(0.05)
    assert process_state(llm.server_pid) != "T"
    await asyncio.wait_for(reader, 30)
    assert len(received) > so_far, "the reply went on after resume()"


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="module")
async def test_taking_turns_pauses_the_llm_while_whisper_or_piper_runs(llm: EmbeddedLlamaLLM) -> None:
    import threading

    from platform_core.engines.runner import Engines
    from platform_core.engines.stt.whisper_cpp import WhisperCppSTT
    from platform_core.engines.vad.silero import SileroVAD
    from platform_core.models import ensure_model
    from tests.speech import piper_voice, speech_16k
    from tests.wer import SAME_UTTERANCE, wer

    states: list[str] = []
    done = threading.Event()

    def watch(pid: int) -> None:
        while not done.is_set():
            states.append(process_state(pid))
            time.sleep(0.002)

    async def while_watched(work: Any) -> Any:
        assert llm.server_pid is not None
        states.clear()
        done.clear()
        watcher = threading.Thread(target=watch, args=(llm.server_pid,))
        watcher.start()
        try:
            return await work
        finally:
            done.set()
            watcher.join()

    async def synthesize(engines: Engines) -> list[Any]:
        return [chunk async for chunk in engines.synthesize("The engines take turns on the CPU. One at a time.")]

    stt = WhisperCppSTT(ensure_model("whisper-tiny.en"), threads=2)
    said = "What is the weather in Paris?"
    question = speech_16k(said)
    assert llm.server_pid is not None
    for take_turns in (True, False):
        engines = Engines(stt=stt, tts=piper_voice(), llm=llm, vad_factory=SileroVAD, take_turns=take_turns)
        assert await while_watched(synthesize(engines))
        assert ("T" in states) is take_turns, states
        # The transcription ran on this question; which words tiny.en heard is not the point here
        # (on another CPU it heard "pairs" for Paris).
        heard = await while_watched(engines.transcribe(question))
        assert wer(said, heard) <= SAME_UTTERANCE, heard
        assert ("T" in states) is take_turns, states
        await asyncio.sleep(0.05)
        assert process_state(llm.server_pid) != "T"  # resumed after each job
    stt.close()


def test_the_llm_server_dies_with_the_platform(tmp_path: Path) -> None:
    """Even while paused (a stopped process never reads the EOF that normally ends it)."""
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM\n"
        "async def main():\n"
        f"    llm = EmbeddedLlamaLLM(Path({str(model_path())!r}), threads=1)\n"
        "    await llm.start()\n"
        "    llm.pause()\n"
        "    print(llm.server_pid, flush=True)\n"
        "    os._exit(9)  # no clean-up: as if the platform crashed\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert parent.returncode == 9, parent.stderr
    child = int(parent.stdout.strip())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and process_state(child) != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or process_state(child) == "Z"


async def test_the_smollm2_option_answers() -> None:
    # `make test` installs this optional model (98 MB); elsewhere the missing-package hint is the path.
    from platform_core.models import ModelError

    try:
        llm = create_llm(EngineConfig(llm="embedded", llm_model="smollm2-135m-instruct", llm_context=1024))
    except ModelError as exc:
        pytest.skip(f"optional model not installed: {exc.hint}")
    await llm.start()
    try:
        reply = "".join(
            [
                d
                async for d in llm.stream_chat(
                    [ChatMessage("user", "What is the capital of France? One word.")], max_tokens=16, temperature=0.0
                )
            ]
        )
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        as_json = "".join(
            [
                d
                async for d in llm.stream_chat(
                    # Greedy, with room to close the string: at 0.2 this 135M model once rambled a city
                    # name past 32 tokens ("Santos-Bravo-Santos-...") and the JSON was cut off.
                    [ChatMessage("user", "Name a city in JSON.")],
                    json_schema=schema,
                    max_tokens=64,
                    temperature=0.0,
                )
            ]
        )
    finally:
        await llm.aclose()
    assert "paris" in reply.lower(), reply
    assert isinstance(json.loads(as_json)["city"], str)  # tool choice's constrained output works too


class _OllamaStandIn(http.server.BaseHTTPRequestHandler):
    """Ollama's HTTP API as its docs define it (/api/tags, streamed NDJSON /api/chat). A stand-in
    because Ollama itself (a Go binary and its model hub) cannot be installed on this machine; the
    client under test is the real `ollama` package."""

    requests: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(200, json.dumps({"models": [{"model": "qwen2.5:0.5b", "name": "qwen2.5:0.5b"}]}).encode())

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(request)
        if request["model"] != "qwen2.5:0.5b":
            self._reply(404, json.dumps({"error": f"model '{request['model']}' not found"}).encode())
            return
        parts = ["Paris", " is the", " capital."] if request.get("format") is None else ['{"city":', ' "Paris"}']
        lines = [
            {"model": request["model"], "message": {"role": "assistant", "content": p}, "done": False} for p in parts
        ]
        lines.append({"model": request["model"], "message": {"role": "assistant", "content": ""}, "done": True})
        self._reply(200, "".join(json.dumps(line) + "\n" for line in lines).encode(), "application/x-ndjson")


@pytest.fixture
def ollama_stand_in() -> Iterator[str]:
    _OllamaStandIn.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OllamaStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_ollama_streams_the_reply_and_passes_the_schema_and_limits(ollama_stand_in: str) -> None:
    llm = create_llm(EngineConfig(llm="ollama", llm_model="qwen2.5:0.5b", llm_url=ollama_stand_in))
    await llm.start()
    try:
        deltas = [d async for d in llm.stream_chat([ChatMessage("system", "Be brief."), *HELLO], max_tokens=20)]
        schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        as_json = "".join([d async for d in llm.stream_chat(HELLO, json_schema=schema, temperature=0.0)])
    finally:
        await llm.aclose()
    assert deltas == ["Paris", " is the", " capital."]  # streamed, piece by piece
    assert json.loads(as_json) == {"city": "Paris"}
    reply, structured = _OllamaStandIn.requests
    assert reply["messages"][0] == {"role": "system", "content": "Be brief."} and reply["stream"] is True
    assert reply["options"]["num_predict"] == 20 and reply.get("format") is None
    assert structured["format"] == schema and structured["options"]["temperature"] == 0.0


async def test_ollama_without_the_model_names_the_pull_command(ollama_stand_in: str) -> None:
    engine = OllamaLLM("llama3.2", ollama_stand_in)
    with pytest.raises(EngineUnavailable, match=r"has no model 'llama3\.2'") as err:
        await engine.start()
    assert err.value.hint == "run `ollama pull llama3.2`"
