"""Signalling at the edge, on a real platform (in this process, so its log, its conversations and
its memory can be read), over real websockets and real aiortc peers on loopback:

- over 1,000 malformed openings of /call (mutations of a real aiortc offer, wrong JSON types, deep
  and oversized messages, many audio sections, offers that never connect), a good call (a real peer
  that connects and reaches `active`) after every 50 and at the end: each opening gets one clear
  error (or an answer, where the mutation left a valid offer), nothing unhandled reaches the log, no
  conversation is left `connecting`, memory and file descriptors come back near their baseline;
- callers over `max_calls` are told "busy", the others connect and each has a typed turn answered;
- an answered offer whose ICE never completes is dropped after `connect_timeout_s` with the reason;
- typed turns over `max_text_turns_per_s` are refused, the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import re
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from platform_core import Platform, PlatformConfig
from platform_core.events import ConversationStateChanged, ErrorOccurred, Event, TurnCompleted
from platform_core.pipeline.responder import APOLOGY_TEXT, BUSY_TEXT
from platform_core.protocol import WS_MAX_SIZE
from platform_core.transport.client import CallClient, CallError
from platform_core.transport.wav_source import SilenceSource
from tests.agents_helpers import wait_until
from tests.signalling_mutations import Opening, malformed_openings, offer_message

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

KEY = "fuzz-key"
MAX_CALLS = 3
CONNECT_TIMEOUT_S = 3.0
# A good call after every 50 openings in the suite (40 s); CONVERSIMPLE_FUZZ_GOOD_EVERY=1 puts one after
# each opening, as the issue asks, on demand (1,000 more calls: minutes).
GOOD_CALL_EVERY = int(os.environ.get("CONVERSIMPLE_FUZZ_GOOD_EVERY", "50"))
_TRACKED = {"Conversation", "CallPeer", "RTCPeerConnection", "Listener", "Responder", "CallFeed"}


class Problems(logging.Handler):
    """Every error logged and every exception the loop saw unhandled, while the platform runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.seen.append(f"{record.name}: {record.getMessage()}")

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.seen.append(f"loop: {context.get('message')} {context.get('exception')!r}")


class Fuzzed:
    def __init__(self, platform: Platform, problems: Problems) -> None:
        self.platform, self.problems = platform, problems
        self.ws_url = platform.url.replace("http://", "ws://") + "/call"
        self.states: dict[str, str] = {}  # conversation id -> its last state

    def on_event(self, event: Event) -> None:
        if isinstance(event, ConversationStateChanged) and event.conversation_id:
            self.states[event.conversation_id] = event.state


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzzed() -> AsyncIterator[Fuzzed]:
    config = PlatformConfig()
    config.server.port = 0
    config.server.api_key = KEY
    config.server.max_calls = MAX_CALLS
    config.server.connect_timeout_s = CONNECT_TIMEOUT_S
    problems = Problems()
    logging.getLogger().addHandler(problems)
    asyncio.get_running_loop().set_exception_handler(problems.loop_exception)
    platform = Platform(config)
    await platform.start()
    fuzz = Fuzzed(platform, problems)
    unsubscribe = platform.bus.subscribe(fuzz.on_event)
    try:
        yield fuzz
    finally:
        unsubscribe()
        await platform.stop()
        logging.getLogger().removeHandler(problems)
        asyncio.get_running_loop().set_exception_handler(None)


# --- callers --------------------------------------------------------------------------------------


async def real_offer() -> str:
    """A real aiortc caller's complete offer (its peer is closed: its candidates lead nowhere)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(SilenceSource())
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A UDP port that receives and never answers: ICE checks sent to it never complete."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield int(sink.getsockname()[1])


def towards(sdp: str, port: int) -> str:
    """The offer with its candidates replaced by one host candidate at 127.0.0.1:`port`."""
    lines = [line for line in sdp.split("\r\n") if not line.startswith("a=candidate:")]
    at = lines.index("a=end-of-candidates")
    lines.insert(at, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
    return "\r\n".join(lines)


async def _open_ws(fuzz: Fuzzed) -> ClientConnection:
    return await connect(fuzz.ws_url, max_size=WS_MAX_SIZE, proxy=None, open_timeout=10)


async def open_once(fuzz: Fuzzed, opening: Opening) -> tuple[str, str]:
    """Send one opening; ("refused", message) / ("answered", "") / ("closed", code)."""
    async with await _open_ws(fuzz) as ws:
        try:
            await ws.send(opening.payload)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 15))
        except ConnectionClosed as exc:
            return "closed", str(exc.rcvd.code if exc.rcvd else None)
        if reply["type"] == "error":
            assert reply["message"] and reply["hint"], reply
            return "refused", reply["message"]
        assert reply["type"] == "answer", reply
        return "answered", ""


async def never_connects(fuzz: Fuzzed, sdp: str) -> str:
    """Answered, then ICE never completes: the reason of the `ended` the platform sends."""
    with black_hole() as port:
        async with await _open_ws(fuzz) as ws:
            await ws.send(offer_message(towards(sdp, port), KEY))
            async with asyncio.timeout(CONNECT_TIMEOUT_S + 10):
                async for raw in ws:
                    message = json.loads(raw)
                    assert message["type"] in ("answer", "event", "ended"), message
                    if message["type"] == "ended":
                        return str(message["reason"])
    raise AssertionError("the feed closed without `ended`")


class GoodCall:
    """A real aiortc caller (silence as its microphone) that connects and reaches `active`."""

    def __init__(self, fuzz: Fuzzed) -> None:
        self.states: list[str] = []
        self.errors: list[ErrorOccurred] = []
        self.completed: list[TurnCompleted] = []
        self.client = CallClient(fuzz.platform.url, api_key=KEY, on_event=self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ConversationStateChanged):
            self.states.append(event.state)
        elif isinstance(event, ErrorOccurred):
            self.errors.append(event)
        elif isinstance(event, TurnCompleted):
            self.completed.append(event)

    async def __aenter__(self) -> GoodCall:
        await self.client.connect()
        await wait_until(lambda: "active" in self.states, 15, "the call to become active")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.hangup()

    async def ask(self, text: str, timeout: float = 120) -> TurnCompleted:
        """Type one turn; its TurnCompleted, once the answer has been played."""
        done = len(self.completed)
        await self.client.send_text(text)
        await wait_until(lambda: len(self.completed) > done, timeout, f"the answer to {text!r}")
        return self.completed[done]


async def good_call(fuzz: Fuzzed) -> None:
    async with GoodCall(fuzz):
        pass


# --- measurements ---------------------------------------------------------------------------------


def rss_mb() -> float:
    status = open("/proc/self/status").read()  # noqa: SIM115 (one read)
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


def _trim() -> None:
    """Hand back what the C allocator keeps cached (freed, not returned): what RSS still shows is held."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled(fuzz: Fuzzed) -> None:
    """Every call over and forgotten, every conversation ended."""
    await wait_until(lambda: not fuzz.platform.calls, 20, "every call to be forgotten")
    await wait_until(lambda: all(s == "ended" for s in fuzz.states.values()), 10, "every conversation to end")


# --- the tests ------------------------------------------------------------------------------------


async def test_an_offer_that_never_connects_is_dropped_with_a_reason(fuzzed: Fuzzed) -> None:
    sdp = await real_offer()
    started = time.monotonic()
    reason = await never_connects(fuzzed, sdp)
    took = time.monotonic() - started
    assert "no media connection" in reason and "ICE/DTLS" in reason, reason
    assert CONNECT_TIMEOUT_S - 0.5 < took < CONNECT_TIMEOUT_S + 5, took
    await settled(fuzzed)
    assert not fuzzed.problems.seen


async def test_callers_over_the_limit_are_told_busy_the_others_connect(fuzzed: Fuzzed) -> None:
    async with contextlib.AsyncExitStack() as calls:
        admitted = await asyncio.gather(*(calls.enter_async_context(GoodCall(fuzzed)) for _ in range(MAX_CALLS)))
        assert all("active" in call.states for call in admitted)
        assert fuzzed.platform.health_report()["calls"] == {"in_progress": MAX_CALLS, "max_calls": MAX_CALLS}
        for _ in range(2):
            with pytest.raises(CallError) as refused:
                await GoodCall(fuzzed).__aenter__()
            assert f"busy: {MAX_CALLS} calls in progress, the limit is {MAX_CALLS}" in refused.value.message
            assert "try again" in refused.value.hint
        # The admitted callers are served, not only connected: each typed turn gets a real answer.
        questions = ["What is two plus two?", "What is the capital of France?", "Say hello."][:MAX_CALLS]
        answers = await asyncio.gather(*(call.ask(q) for call, q in zip(admitted, questions, strict=True)))
        for call, question, answer in zip(admitted, questions, answers, strict=True):
            assert answer.user_text == question and answer.agent_text.strip(), answer
            assert not answer.interrupted, answer
            assert answer.agent_text not in (BUSY_TEXT, APOLOGY_TEXT), answer  # queued for the LLM, then answered
            assert not call.errors, call.errors
        await admitted[0].client.hangup()
        await wait_until(lambda: len(fuzzed.platform.calls) < MAX_CALLS, 10, "the hung-up call to be forgotten")
        await good_call(fuzzed)  # a slot is free again
    await settled(fuzzed)
    assert not fuzzed.problems.seen


async def test_typed_turns_over_the_rate_are_refused_and_the_call_goes_on(fuzzed: Fuzzed) -> None:
    async with GoodCall(fuzzed) as call:
        for i in range(6):
            await call.client.send_text(f"Say the number {i}.")
        await wait_until(lambda: len(call.errors) >= 4, 10, "the refusals")
        await asyncio.sleep(0.3)
        refusals = [e for e in call.errors if "too many text turns" in e.message]
        assert len(refusals) == 4, call.errors  # the limit is 2 a second
        assert not call.client.ended
    await settled(fuzzed)


async def test_offers_with_many_audio_sections_are_refused_before_costing_memory(fuzzed: Fuzzed) -> None:
    sdp = await real_offer()
    session, audio = sdp[: sdp.index("m=audio")], sdp[sdp.index("m=audio") :]
    limits = fuzzed.platform.config.server
    # Such offers are 127 KB and 380 KB: over the message and SDP size limits, which refuse them too.
    # Raised here, so that what refuses them is the audio sections limit.
    saved = limits.max_message_bytes, limits.max_sdp_bytes
    limits.max_message_bytes = limits.max_sdp_bytes = 1_000_000
    try:
        await _refuse_many_sections(fuzzed, session, audio)
    finally:
        limits.max_message_bytes, limits.max_sdp_bytes = saved
    await settled(fuzzed)


async def _refuse_many_sections(fuzzed: Fuzzed, session: str, audio: str) -> None:
    for count in (100, 300):
        sections = "".join(re.sub(r"a=mid:\S+", f"a=mid:{i}", audio) for i in range(count))
        before = rss_mb()
        outcome, message = await open_once(fuzzed, Opening("many", offer_message(session + sections, KEY)))
        grew = rss_mb() - before
        print(f"\n{count} audio sections: {outcome} ({message}); RSS {before:.0f} -> {before + grew:.0f} MB")
        assert outcome == "refused" and f"{count} audio sections" in message
        assert grew < 20, f"{count} audio sections cost {grew:.0f} MB"


async def test_signalling_fuzz(fuzzed: Fuzzed) -> None:
    sdp = await real_offer()
    openings = malformed_openings(sdp, KEY)
    assert len(openings) >= 1_000
    await good_call(fuzzed)  # warm: the first call allocates what every later one reuses
    await settled(fuzzed)
    _trim()
    rss_before, fds_before, started = rss_mb(), open_fds(), time.monotonic()
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    good = never = 0
    rss_seen: list[int] = []  # along the way: a leak grows, an allocator's high-water mark levels off
    for i, opening in enumerate(openings, 1):
        outcome, detail = await open_once(fuzzed, opening)
        assert outcome != "closed" or (detail == "1009" and len(opening.payload) > WS_MAX_SIZE), (opening, detail)
        outcomes[opening.kind][outcome] += 1
        if i % 250 == 0:
            rss_seen.append(round(rss_mb()))
        if i % GOOD_CALL_EVERY == 0:
            await good_call(fuzzed)
            good += 1
        if i % 400 == 0:  # two at once, each dropped after the connect timeout
            reasons = await asyncio.gather(never_connects(fuzzed, sdp), never_connects(fuzzed, sdp))
            assert all("no media connection" in r for r in reasons), reasons
            outcomes["offer that never connects"]["dropped"] += 2
            never += 2
    await good_call(fuzzed)
    good += 1
    await settled(fuzzed)
    took = time.monotonic() - started
    await asyncio.sleep(1.0)  # aiortc's transports finish closing
    rss_after, fds_after = rss_mb(), open_fds()
    gc.collect()
    alive = Counter(type(o).__name__ for o in gc.get_objects() if type(o).__name__ in _TRACKED)
    _trim()
    rss_trimmed = rss_mb()
    print(f"\nsignalling fuzz: {len(openings) + never} malformed openings, {good} good calls, {took:.0f} s")
    for kind, counts in sorted(outcomes.items()):
        print(f"  {kind:28} {sum(counts.values()):5}  {dict(counts)}")
    print(
        f"  RSS {rss_before:.0f} -> {rss_after:.0f} MB (every 250: {rss_seen}), {rss_trimmed:.0f} MB after malloc_trim"
    )
    print(f"  open fds {fds_before} -> {fds_after}; call objects alive after: {dict(alive)}")
    assert not fuzzed.problems.seen, fuzzed.problems.seen[:20]
    assert not alive, alive  # nothing of a refused, dropped or ended call is kept
    assert rss_trimmed - rss_before < 60, (rss_before, rss_after, rss_trimmed)
    assert fds_after - fds_before <= 4, (fds_before, fds_after)
