"""End of turn by meaning on real calls: a caller's 0.8 s pause mid-sentence stays one turn with
the turn model, and splits in two with silence alone; a complete question commits without waiting.

Real platform processes (default engines, the real Smart Turn model), real WebRTC calls, the
questions spoken by Piper: two clips with real silence between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.harness import RunningPlatform, start_platform, stop_platform
from platform_core.audio import STT_RATE
from platform_core.audio_files import write_wav
from platform_core.calls import place_call
from platform_core.events import Event, TurnCommitted, TurnHeld
from tests.speech import speak, words

pytestmark = pytest.mark.slow

FIRST, SECOND = "Can you tell me the weather in", "London, please."


def _words_only(pcm: np.ndarray) -> np.ndarray:
    voiced = np.nonzero(np.abs(pcm) > 300)[0]
    return pcm[voiced[0] : voiced[-1] + 1]


def split_question(folder: Path, pause_s: float = 0.8) -> Path:
    """FIRST, `pause_s` of silence, SECOND: one question with a pause mid-sentence (16 kHz WAV)."""
    lead, pause = np.zeros(STT_RATE // 2, np.int16), np.zeros(int(STT_RATE * pause_s), np.int16)
    pcm = np.concatenate([lead, _words_only(speak(FIRST, STT_RATE)), pause, _words_only(speak(SECOND, STT_RATE)), lead])
    return write_wav(folder / f"split_{pause_s}.wav", pcm, STT_RATE)


def complete_question(folder: Path, text: str) -> Path:
    lead = np.zeros(STT_RATE // 2, np.int16)
    return write_wav(
        folder / "complete.wav", np.concatenate([lead, _words_only(speak(text, STT_RATE)), lead]), STT_RATE
    )


@pytest.fixture(scope="module")
def smart_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("smart"), "--turn-detection", "smart-turn")
    yield running
    stop_platform(running.process)


async def _call(platform: RunningPlatform, wav: Path) -> tuple[dict, list[Event]]:  # type: ignore[type-arg]
    seen: list[Event] = []
    report = await place_call(platform.url, None, input_wav=wav, api_key=platform.api_key, on_event=seen.append)
    return report, seen


@pytest.mark.timeout(400)
async def test_a_pause_mid_sentence_is_one_turn_answered_as_one(
    smart_platform: RunningPlatform, tmp_path: Path
) -> None:
    report, seen = await _call(smart_platform, split_question(tmp_path))
    assert len(report["turns"]) == 1, report["turns"]
    turn = report["turns"][0]
    heard = words(turn["user_text"])
    assert {"weather", "london"} <= heard, turn["user_text"]  # both halves in the one turn
    assert turn["agent_text"] and not turn["interrupted"]
    held = [e for e in seen if isinstance(e, TurnHeld)]
    committed = [e for e in seen if isinstance(e, TurnCommitted)]
    assert held and held[0].probability < 0.5 and held[0].wait_s == 3.0  # held at the pause
    # Then committed as complete at the second half's endpoint: the model judges the continuation, not the
    # whole turn with its pause inside (which it took for unfinished, so the turn waited out the 3 s).
    assert len(committed) == 1 and committed[0].reason == "complete", committed
    # Held from the pause's endpoint to the commit: the rest of the pause, the second half, its endpoint.
    second_s = len(_words_only(speak(SECOND, STT_RATE))) / STT_RATE
    assert 0.6 < committed[0].held_s < 0.8 + second_s + 1.0, (committed[0].held_s, second_s)


@pytest.mark.timeout(400)
async def test_a_complete_question_commits_without_waiting(smart_platform: RunningPlatform, tmp_path: Path) -> None:
    report, seen = await _call(smart_platform, complete_question(tmp_path, "What is the capital of France?"))
    assert len(report["turns"]) == 1, report["turns"]
    assert not [e for e in seen if isinstance(e, TurnHeld)]
    (committed,) = [e for e in seen if isinstance(e, TurnCommitted)]
    assert committed.reason == "complete" and committed.held_s == 0.0
    assert committed.probability is not None and committed.probability >= 0.5
    # Committed at the silence endpoint, not after a hold (the bench measures how fast).
    assert report["turns"][0]["metrics"]["end_of_turn_delay"] < 1.0


@pytest.mark.timeout(400)
async def test_silence_alone_cuts_the_same_question_in_two(tmp_path: Path) -> None:
    platform = start_platform(tmp_path, "--turn-detection", "silence")
    try:
        report, seen = await _call(platform, split_question(tmp_path))
    finally:
        stop_platform(platform.process)
    assert len(report["turns"]) == 2, report["turns"]
    assert not [e for e in seen if isinstance(e, TurnHeld)]
    assert [e.reason for e in seen if isinstance(e, TurnCommitted)] == ["silence", "silence"]
