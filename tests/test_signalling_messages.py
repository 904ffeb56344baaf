"""The edge checks of /call, as pure code: message size, depth, field types, the typed-turn rate, the
bounded feed, and the offer check on a real aiortc offer (no platform, no engines)."""

from __future__ import annotations

import json

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from platform_core.events import AudioLevel
from platform_core.server.messages import BadMessage, MessageLimits, TurnRate, json_depth, parse_command, parse_offer
from platform_core.server.signalling import CallFeed
from platform_core.transport.offer import BadOffer, OfferLimits, check_offer
from platform_core.transport.wav_source import SilenceSource

LIMITS = MessageLimits(max_bytes=1_000, max_depth=4)


def test_depth_is_counted_without_parsing_and_ignores_brackets_in_strings() -> None:
    assert json_depth('"x"') == 0
    assert json_depth('{"a": [1, {"b": []}]}') == 4
    assert json_depth('{"a": "[[[[[[\\"[[["}') == 1
    assert json_depth("[" * 100_000) == 100_000  # no RecursionError: nothing is parsed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x" * 1_001, "the message is 1,001 bytes; the limit is 1,000"),
        ('{"type": "offer", "x": [[[[]]]]}', "nests 5 levels deep; the limit is 4"),
        ("[" * 900, "nests 900 levels deep"),
        ("{", "not JSON"),
        (b"\xff", "not UTF-8"),
        ("[]", "the message is an array, not a JSON object"),
        ('{"type": "text"}', "must be an offer"),
        ('{"type": "offer"}', '"sdp" must be the SDP text (it is missing)'),
        ('{"type": "offer", "sdp": 5}', "(it is a number)"),
        ('{"type": "offer", "sdp": " "}', "(it is empty)"),
        ('{"type": "offer", "sdp": "v=0", "agent_id": ["a"]}', '"agent_id" must be a string, not an array'),
        ('{"type": "offer", "sdp": "v=0", "api_key": {"k": 1}}', '"api_key" must be a string, not an object'),
        ('{"type": "offer", "sdp": "v=0", "token": 7}', '"token" must be a string, not a number'),
        ('{"type": "offer", "sdp": "v=0", "feed": "video"}', '"feed" must be one of all, no-levels'),
    ],
)
def test_bad_offers_are_refused_with_the_reason(raw: str | bytes, expected: str) -> None:
    with pytest.raises(BadMessage) as refused:
        parse_offer(raw, LIMITS)
    assert expected in refused.value.message
    assert '"type": "offer"' in refused.value.hint


def test_a_good_offer_message_keeps_its_fields_and_null_is_absent() -> None:
    raw = json.dumps({"type": "offer", "sdp": "v=0", "agent_id": None, "api_key": "k", "feed": "no-levels"})
    offer = parse_offer(raw, LIMITS)
    assert (offer.sdp, offer.agent_id, offer.api_key, offer.token, offer.feed) == ("v=0", None, "k", None, "no-levels")
    assert parse_offer(b'{"type": "offer", "sdp": "v=0", "agent_id": ""}', LIMITS).agent_id is None


def test_commands() -> None:
    assert parse_command('{"type": "hangup"}', LIMITS).kind == "hangup"
    assert parse_command('{"type": "text", "text": "hi"}', LIMITS).text == "hi"
    for raw, expected in [
        ('{"type": "text", "text": ["hi"]}', 'non-empty string "text"'),
        ('{"type": "text", "text": "  "}', 'non-empty string "text"'),
        ('{"type": "dance"}', "unknown command 'dance'"),
        ('{"type": {"a": 1}}', "unknown command an object"),
        ("[[[[[[]]]]]]", "levels deep"),
    ]:
        with pytest.raises(BadMessage, match=expected) as refused:
            parse_command(raw, LIMITS)
        assert "hangup" in refused.value.hint


def test_turn_rate_is_a_sliding_one_second_window() -> None:
    rate = TurnRate(2)
    assert [rate.allow(t) for t in (0.0, 0.1, 0.2, 0.9)] == [True, True, False, False]
    assert rate.allow(1.0) and not rate.allow(1.05)  # 0.0 left the window, 0.1 has not
    assert rate.allow(1.1)


async def test_the_call_feed_drops_the_oldest_and_counts() -> None:
    feed = CallFeed(3)
    for i in range(5):
        feed.put(AudioLevel(conversation_id="c", source="caller", rms_dbfs=float(-i), peak=0.0))
    assert feed.dropped == 2
    got = [await feed.get() for _ in range(3)]
    assert [e.rms_dbfs for e in got if isinstance(e, AudioLevel)] == [-2.0, -3.0, -4.0]


async def _real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(SilenceSource())
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_offers_are_checked_before_anything_is_built() -> None:
    sdp = await _real_offer()
    limits = OfferLimits(max_bytes=32_768, max_audio_sections=1, max_media_sections=3)
    assert check_offer(sdp, limits).media[0].kind == "audio"
    audio = sdp[sdp.index("m=audio") :]
    cases = {
        sdp + "a=x:" + "p" * 40_000 + "\r\n": "the limit is 32,768",
        sdp + audio: "the offer has 2 audio sections; the platform answers at most 1",
        sdp + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 3: "4 media sections; the limit is 3",
        sdp.replace("a=setup:actpass", "a=setup:bogus"): "'a=setup:bogus' is not a DTLS role",
        sdp.replace("a=rtpmap:96 opus/48000/2", "a=rtpmap:96 opus"): "cannot be parsed",
        sdp[: sdp.index("a=ice-ufrag")]: "no ICE credentials",
        sdp.replace("a=end-of-candidates", "a=candidate:1 1 udp 1 127.0.0.1 99999 typ host\r\na=end-of-candidates"): (
            "a candidate with port 99999"
        ),
        sdp.replace("a=sendrecv", "a=recvonly"): "the offer's audio is recvonly",
        "v=0\r\n": "no audio section",
    }
    for bad, expected in cases.items():
        with pytest.raises(BadOffer) as refused:
            check_offer(bad, limits)
        assert expected in refused.value.message
        assert "audio track" in refused.value.hint
