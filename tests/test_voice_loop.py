"""The voice loop end to end: real engines, a real platform process, real WebRTC calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.harness import RunningPlatform
from platform_core.audio import level
from platform_core.calls import place_call
from platform_core.events import TURN_METRICS
from tests.speech import read_wav, speech_wav, transcribe, words
from tests.wer import SAME_UTTERANCE, wer

pytestmark = pytest.mark.slow


def assert_consistent_metrics(metrics: dict[str, float | None]) -> None:
    for name in TURN_METRICS:
        value = metrics.get(name)
        assert value is not None and 0 < value < 30, f"{name} = {value!r}"
    # Each stage starts after the one before it, so the end-to-end figure bounds them all.
    assert metrics["llm_ttft"] <= metrics["llm_ttfs"]  # type: ignore[operator]
    assert metrics["transcription_delay"] < metrics["e2e_latency"]  # type: ignore[operator]
    assert metrics["end_of_turn_delay"] < metrics["transcription_delay"]  # type: ignore[operator]
    assert metrics["tts_ttfb"] < metrics["e2e_latency"]  # type: ignore[operator]


async def test_spoken_question_gets_a_spoken_answer(platform_server: RunningPlatform, tmp_path: Path) -> None:
    said = "What is the capital of France?"
    question = speech_wav(tmp_path, said)
    answer_wav = tmp_path / "answer.wav"
    report = await place_call(
        platform_server.url,
        None,
        input_wav=question,
        output_wav=answer_wav,
        report_path=tmp_path / "report.json",
        api_key=platform_server.api_key,
    )

    assert report["conversation_id"]
    assert len(report["turns"]) == 1, report
    turn = report["turns"][0]
    assert wer(said, turn["user_text"]) <= SAME_UTTERANCE, turn["user_text"]
    assert turn["agent_text"] and not turn["interrupted"]
    assert turn["tool_calls"] == []
    assert_consistent_metrics(turn["metrics"])

    pcm, rate = read_wav(answer_wav)
    assert level(pcm)[0] > -40, "the agent's answer is silent"
    heard = words(transcribe(pcm, rate))
    said = words(turn["agent_text"])
    overlap = len(heard & said) / max(1, len(said))
    assert overlap >= 0.5, f"whisper heard {heard}, the agent said {said}"
    assert (tmp_path / "report.json").exists()
    assert report["summary"]["e2e_latency"]["p50"] == pytest.approx(turn["metrics"]["e2e_latency"], abs=1e-3)


async def test_typed_turn_is_answered_in_speech(platform_server: RunningPlatform, tmp_path: Path) -> None:
    answer_wav = tmp_path / "answer.wav"
    report = await place_call(
        platform_server.url,
        None,
        text="Say hello to the testers.",
        output_wav=answer_wav,
        api_key=platform_server.api_key,
    )
    assert len(report["turns"]) == 1
    turn = report["turns"][0]
    assert turn["user_text"] == "Say hello to the testers."
    assert turn["agent_text"]
    assert turn["metrics"]["e2e_latency"] > 0
    pcm, _ = read_wav(answer_wav)
    assert np.abs(pcm).max() > 1000


async def test_wrong_api_key_is_refused_with_a_reason(platform_server: RunningPlatform, tmp_path: Path) -> None:
    from platform_core.transport.client import CallError

    with pytest.raises(CallError, match=r"(?i)api key"):
        await place_call(platform_server.url, None, text="hello", api_key="not-the-key")


async def test_the_words_so_far_show_while_the_caller_speaks(platform_server: RunningPlatform, tmp_path: Path) -> None:
    said = "Could you please tell me what the weather will be like in Lisbon tomorrow morning?"
    question = speech_wav(tmp_path, said)
    report = await place_call(platform_server.url, None, input_wav=question, api_key=platform_server.api_key)
    turn = report["turns"][0]
    final = words(turn["user_text"])
    assert wer(said, turn["user_text"]) <= SAME_UTTERANCE, turn["user_text"]
    # At least one partial transcript came while the caller was still speaking, and it is the start
    # of what they said.
    print("partials:", turn["user_partials"], "final:", turn["user_text"])
    assert turn["user_partials"], turn
    first = words(turn["user_partials"][0])
    assert first and len(first & final) / len(first) >= 0.6, (turn["user_partials"], turn["user_text"])
