"""What the agent's track plays, and what barge-in keeps of a cut answer."""

import asyncio

import numpy as np

from platform_core.audio import FRAME_SAMPLES, frame_to_mono
from platform_core.pipeline.playback import PlaybackQueue, Segment
from platform_core.pipeline.turn import PlayedSegment, Turn
from platform_core.transport.agent_track import AgentAudioTrack


def tone(samples: int) -> np.ndarray:
    return (np.ones(samples) * 1000).astype(np.int16)


def test_segments_play_in_order_then_silence() -> None:
    queue = PlaybackQueue()
    done: list[str] = []
    queue.on_segment_done = lambda seg: done.append(seg.text)
    queue.enqueue(Segment("one", tone(FRAME_SAMPLES + 100), turn_id=1))
    queue.enqueue(Segment("two", tone(50), turn_id=1))
    (first, _), (second, _), (third, had_audio) = queue.next_frame(), queue.next_frame(), queue.next_frame()
    assert first.min() == 1000
    assert second[:150].min() == 1000 and second[150:].max() == 0
    assert third.max() == 0 and not had_audio
    assert done == ["one", "two"]


def test_clear_reports_the_played_fraction_and_keeps_other_turns() -> None:
    queue = PlaybackQueue()
    queue.enqueue(Segment("alpha beta gamma delta", tone(FRAME_SAMPLES * 4), turn_id=1))
    queue.enqueue(Segment("later", tone(FRAME_SAMPLES), turn_id=2))
    queue.next_frame()
    cut = queue.clear(turn_id=1)
    assert [(c.text, c.fraction) for c in cut] == [("alpha beta gamma delta", 0.25)]
    assert queue.busy  # turn 2's segment stays


def test_turn_keeps_only_the_heard_words() -> None:
    turn = Turn(turn_id=1, speech_ended_at=0.0)
    turn.segment_enqueued()
    turn.segment_played("The weather is sunny.")
    text = turn.played_text([PlayedSegment("It is twenty degrees today.", 0.6)])
    assert text == "The weather is sunny. It is twenty"


async def test_track_paces_frames_in_real_time() -> None:
    track = AgentAudioTrack(lambda: np.zeros(FRAME_SAMPLES, dtype=np.int16))
    loop = asyncio.get_running_loop()
    start = loop.time()
    frames = [await track.recv() for _ in range(11)]
    elapsed = loop.time() - start
    assert 0.18 <= elapsed <= 0.5  # ten 20 ms intervals
    assert all(len(frame_to_mono(f)) == FRAME_SAMPLES for f in frames)
    assert frames[-1].pts == 10 * FRAME_SAMPLES
