"""The one audio-file reader and writer (platform_core/audio_files.py) and the paced track's clock, on real files."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE
from platform_core.audio_files import AudioFileError, WavWriter, read_audio, write_wav
from platform_core.transport.pacing import FramePacer


def noise(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 6000, n).clip(-32768, 32767).astype(np.int16)


def test_written_file_reads_back_sample_exact(tmp_path: Path) -> None:
    samples = noise(WEBRTC_RATE)
    path = write_wav(tmp_path / "sub" / "a.wav", samples)  # missing folders are made
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (WEBRTC_RATE, 1, 2)
    assert np.array_equal(read_audio(path), samples)


def test_stereo_and_other_rates_are_read_as_mono_at_the_rate_asked(tmp_path: Path) -> None:
    samples = noise(16_000)
    path = write_wav(tmp_path / "stereo16k.wav", samples, 16_000, channels=2)
    assert np.array_equal(read_audio(path, 16_000), samples)
    assert read_audio(path).size == pytest.approx(WEBRTC_RATE, abs=FRAME_SAMPLES)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "keep.wav", noise(960))
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_wav(path, np.array(["not a sample"]))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        (b"plain text, not audio\n", "not a readable audio file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x55\x55\x01\x00", "not a readable audio file"),
    ],
    ids=["missing", "not-audio", "unknown-wav-codec"],
)
def test_unreadable_files_are_named_with_the_formats_that_work(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "in.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioFileError, match=expected) as info:
        read_audio(path)
    assert str(path) in str(info.value) and "Use a WAV file" in str(info.value)


def test_a_recording_in_progress_is_a_complete_wav(tmp_path: Path) -> None:
    writer = WavWriter(tmp_path / "caller.wav")
    assert not writer.path.exists()  # nothing said yet: no file
    first, second = noise(FRAME_SAMPLES, 2), noise(FRAME_SAMPLES, 3)
    writer.write(first)
    writer.write(second)
    # not closed (as after a crash): what was written is readable
    assert np.array_equal(read_audio(writer.path), np.concatenate([first, second]))
    writer.close()
    writer.close()
    assert writer.samples_written == 2 * FRAME_SAMPLES


async def test_a_device_paced_source_falls_back_to_real_time_pacing() -> None:
    pacer = FramePacer()
    assert [pacer.take() for _ in range(3)] == [0, FRAME_SAMPLES, 2 * FRAME_SAMPLES]  # no waiting
    assert pacer.started_at is not None
    await asyncio.sleep(0.5)  # the device stalls: the next frames are re-anchored, not burst out
    t0 = time.monotonic()
    pts = [await pacer.next_frame() for _ in range(11)]
    assert pts[0] == 3 * FRAME_SAMPLES and pts[-1] == 13 * FRAME_SAMPLES
    assert 0.18 < time.monotonic() - t0 < 0.3
