"""Malformed /call openings for the signalling fuzz: mutations of a real aiortc offer and bad
signalling messages, each with the kind it is counted under. Deterministic (seeded)."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Opening:
    kind: str
    payload: str | bytes  # what the fuzz client sends as its first message


def offer_message(sdp: object, api_key: str, **extra: object) -> str:
    return json.dumps({"type": "offer", "sdp": sdp, "agent_id": None, "api_key": api_key, **extra})


def _replace_lines(sdp: str, prefix: str, replacement: str) -> str:
    lines = sdp.split("\r\n")
    return "\r\n".join(replacement if line.startswith(prefix) else line for line in lines)


def _audio_section(sdp: str) -> tuple[str, str]:
    """(session part, the audio m-section) of a one-section offer."""
    at = sdp.index("m=audio")
    return sdp[:at], sdp[at:]


BAD_M_LINES = [
    "m=audio",
    "m=",
    "m=audio 9",
    "m=audio 9 UDP/TLS/RTP/SAVPF",
    "m=audio x UDP/TLS/RTP/SAVPF 111",
    "m=audio -1 UDP/TLS/RTP/SAVPF 111",
    "m=audio 9 UDP/TLS/RTP/SAVPF abc",
    "m=audio 9 FOO/BAR 111",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 999999",
    "m=speech 9 UDP/TLS/RTP/SAVPF 111",
    "m=audio 99999999999999999999 UDP/TLS/RTP/SAVPF 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF " + " ".join(str(i) for i in range(128)),
]
BAD_CANDIDATES = [
    "a=candidate:",
    "a=candidate:1",
    "a=candidate:1 1 udp",
    "a=candidate:1 1 udp x 127.0.0.1 5000 typ host",
    "a=candidate:1 1 udp 1 999.1.1.1 5000 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 notaport typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 5000",
    "a=candidate:1 1 udp 1 127.0.0.1 5000 typ",
    "a=candidate:1 1 udp 1 127.0.0.1 5000 typ bogus",
    "a=candidate:1 1 udp 1 127.0.0.1 99999 typ host",
    "a=candidate:1 x udp 1 127.0.0.1 5000 typ host",
    "a=candidate:1 1 sctp 1 127.0.0.1 5000 typ host",
    "a=candidate:1 1 udp 1 127.0.0.1 5000 typ srflx raddr",
    "a=candidate:1 1 udp 1 ::::: 5000 typ host",
]
BAD_RTPMAPS = [
    "a=rtpmap:111",
    "a=rtpmap:",
    "a=rtpmap:abc opus/48000/2",
    "a=rtpmap:111 opus",
    "a=rtpmap:111 opus/abc/2",
    "a=rtpmap:111 opus/48000/x",
    "a=rtpmap:111 /48000",
    "a=rtpmap:999999 opus/48000/2",
    "a=rtpmap:111 opus/-1/2",
    "a=rtpmap:111 opus/48000/2/9/9",
]
BAD_SETUPS = ["a=setup:", "a=setup:bogus", "a=setup:holdconn", "a=setup:ACTPASS", "a=setup"]
BAD_OTHER_LINES = [
    ("a=fingerprint:", "a=fingerprint:sha-256"),
    ("a=fingerprint:", "a=fingerprint:md5 00:11"),
    ("a=fingerprint:", "a=fingerprint:"),
    ("a=ice-ufrag:", "a=ice-ufrag:"),
    ("a=ice-pwd:", "a=ice-pwd:"),
    ("a=mid:", "a=mid:"),
    ("a=group:", "a=group:BUNDLE 7"),
    ("a=fmtp:", "a=fmtp:abc minptime=10"),
    ("a=ssrc:", "a=ssrc:x cname:y"),
    ("a=rtcp-fb:", "a=rtcp-fb:"),
    ("a=extmap:", "a=extmap:x urn:bad"),
    ("c=", "c=IN IP4"),
    ("c=", "c=IN IP9 1.2.3.4"),
    ("o=", "o=-"),
    ("v=", "v=9"),
    ("t=", "t=x"),
    ("a=sendrecv", "a=recvonly"),
    ("a=sendrecv", "a=inactive"),
]
UNKNOWN_CODECS = ["foo/48000/2", "xyz/8000", "opus2/48000/2", "PCMU/1", "H264/90000"]


def _sdp_line_mutations(sdp: str) -> Iterator[tuple[str, str]]:
    for line in BAD_M_LINES:
        yield "bad m-line", _replace_lines(sdp, "m=audio", line)
    for line in BAD_CANDIDATES:
        yield "bad candidate", _replace_lines(sdp, "a=candidate:", line)
        yield "bad candidate", sdp.replace("a=end-of-candidates", line + "\r\na=end-of-candidates")
    for line in BAD_RTPMAPS:
        yield "bad rtpmap", _replace_lines(sdp, "a=rtpmap:", line)
        first = re.search(r"a=rtpmap:[^\r]*", sdp)
        assert first is not None
        yield "bad rtpmap", sdp.replace(first.group(0), line, 1)
    for line in BAD_SETUPS:
        yield "bad a=setup", _replace_lines(sdp, "a=setup:", line)
    yield "bad a=setup", "\r\n".join(x for x in sdp.split("\r\n") if not x.startswith("a=setup:"))
    for prefix, line in BAD_OTHER_LINES:
        yield "bad other line", _replace_lines(sdp, prefix, line)
    for codec in UNKNOWN_CODECS:
        yield "unknown codecs", re.sub(r"(a=rtpmap:\d+ )[^\r]*", rf"\g<1>{codec}", sdp)
        yield "unknown codecs", re.sub(r"(a=rtpmap:\d+ )opus/48000/2", rf"\g<1>{codec}", sdp)
    yield "unknown codecs", "\r\n".join(x for x in sdp.split("\r\n") if not x.startswith("a=rtpmap:"))


def _many_sections(sdp: str, count: int) -> str:
    session, audio = _audio_section(sdp)
    sections = [re.sub(r"a=mid:\S+", f"a=mid:{i}", audio) for i in range(count)]
    return session + "".join(sections)


def sdp_mutations(sdp: str, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(kind, mutated SDP) pairs from one real offer."""
    yield from _sdp_line_mutations(sdp)
    for _ in range(320):
        yield "truncated", sdp[: rng.randrange(0, len(sdp))]
    for _ in range(420):
        chars = list(sdp)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice(":= /\r\n0x-~\x00é")
        yield "byte flips", "".join(chars)
    lines = sdp.split("\r\n")
    for _ in range(100):
        shuffled = lines[:]
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
        yield "lines swapped", "\r\n".join(shuffled)
    for count in (2, 3, 5, 10, 30, 100, 300):
        yield "many audio sections", _many_sections(sdp, count)
    yield "many audio sections", sdp + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 10
    yield "oversized SDP", sdp + "a=x-padding:" + "p" * 40_000 + "\r\n"
    yield "empty or blank SDP", ""
    yield "empty or blank SDP", "   \r\n"
    yield "empty or blank SDP", "v=0\r\n"


def _wrong_types(sdp: str, key: str) -> Iterator[Opening]:
    for value in (1, 1.5, True, None, [], [sdp], {}, {"sdp": sdp}):
        yield Opening("wrong JSON types", offer_message(value, key))
    for field in ("agent_id", "api_key", "token", "feed"):
        for value in (1, True, [], ["x"], {}, {"a": 1}):
            message = {"type": "offer", "sdp": sdp, "api_key": key, field: value}
            yield Opening("wrong JSON types", json.dumps(message))
    for message in ([], "offer", 1, None, {"sdp": sdp}, {"type": 1, "sdp": sdp}, {"type": "answer", "sdp": sdp}):
        yield Opening("wrong JSON types", json.dumps(message))
    yield Opening("wrong JSON types", offer_message(sdp, key, feed="video"))
    yield Opening("wrong JSON types", offer_message(sdp, "not-the-key"))


def _not_json(sdp: str, key: str) -> Iterator[Opening]:
    good = offer_message(sdp, key)
    for payload in ("", "{", "nul", good[: len(good) // 2], "{'type': 'offer'}", "1" * 5000, "[" * 5 + "]" * 4):
        yield Opening("not JSON", payload)
    yield Opening("not JSON", b"\xff\xfe\x00 not utf-8")
    yield Opening("not JSON", good.encode())  # a binary frame with a good offer in it is answered


def _deep_json(sdp: str, key: str) -> Iterator[Opening]:
    for depth in (9, 20, 100, 1_000, 10_000, 30_000):
        yield Opening(
            "deep JSON",
            json.dumps({"type": "offer", "sdp": sdp, "api_key": key})[:-1]
            + ', "x": '
            + "[" * depth
            + "]" * depth
            + "}",
        )
    yield Opening("deep JSON", "[" * 30_000)
    yield Opening("deep JSON", '{"a":' * 10_000 + "1" + "}" * 10_000)


def _oversized(sdp: str, key: str) -> Iterator[Opening]:
    for size in (70_000, 500_000, 3_000_000):  # under WS_MAX_SIZE: above it websockets itself closes (1009)
        yield Opening("oversized message", offer_message(sdp, key, padding="p" * size))
    yield Opening("oversized message", offer_message(sdp + "a=x:" + "p" * 100_000 + "\r\n", key))


def malformed_openings(sdp: str, key: str, seed: int = 14) -> list[Opening]:
    """Every malformed opening of the fuzz (well over 1,000)."""
    rng = random.Random(seed)
    openings = [Opening(kind, offer_message(mutated, key)) for kind, mutated in sdp_mutations(sdp, rng)]
    for make in (_wrong_types, _not_json, _deep_json, _oversized):
        openings.extend(make(sdp, key))
    return openings
