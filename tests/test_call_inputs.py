"""Inputs a caller may throw at `conversimple-platform call`: each has a defined outcome and message.

- not audio / empty / missing file: refused before calling, exit 2, the message names the file and
  the formats that work;
- 8 kHz, 44.1 kHz stereo, 24-bit: resampled to 48 kHz mono and understood like any other file;
- silence only: a call with 0 turns, status "no_speech", a note, exit 0;
- a 60 s monologue: split by the platform's max turn length; every turn completes, no timeout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.harness import API_KEY
from platform_core.audio_files import AudioFileError, read_audio
from platform_core.calls import place_call
from platform_core.cli.call import EXIT_BAD_INPUT
from platform_core.transport.wav_source import SAMPLE_RATE, WavSource
from tests.platform_helpers import VENV_BIN, sox, speak

TONE_HZ = 1000


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    subprocess.run(
        [
            "sox",
            "-V1",
            "-n",
            "-r",
            "22050",
            "-c",
            "1",
            "-b",
            "16",
            str(path),
            "synth",
            "1.0",
            "sine",
            str(TONE_HZ),
            "vol",
            "0.5",
        ],
        check=True,
    )
    return path


@pytest.mark.parametrize(
    ("rate", "channels", "bits"),
    [(8000, 1, 16), (44100, 2, 16), (16000, 1, 24), (48000, 2, 32), (11025, 1, 8)],
)
def test_common_wav_variants_become_48k_mono(tone: Path, tmp_path: Path, rate: int, channels: int, bits: int) -> None:
    variant = sox(tone, tmp_path / "v.wav", rate=rate, channels=channels, bits=bits)
    samples = read_audio(variant)
    assert samples.dtype == np.int16
    assert samples.size / SAMPLE_RATE == pytest.approx(1.0, abs=0.01)
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / samples.size
    assert peak_hz == pytest.approx(TONE_HZ, abs=5)
    assert 0.3 < np.abs(samples).max() / 32768 < 0.6  # level kept when downmixing


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is a text file, not audio\n", "not a readable audio file"),
        (b"", "not a readable audio file"),
        (None, "no such file"),
    ],
)
def test_unusable_files_are_named_with_a_remedy(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "in.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioFileError, match=expected) as info:
        WavSource(path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value) and "Use a WAV file" in str(info.value)


def test_header_only_wav_is_empty(tmp_path: Path, tone: Path) -> None:
    path = tmp_path / "hdr.wav"
    path.write_bytes(tone.read_bytes()[:44])
    with pytest.raises(AudioFileError, match="contains no audio samples"):
        read_audio(path)


def test_cli_refuses_non_audio_before_calling(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("hello")
    proc = subprocess.run(
        [str(VENV_BIN / "conversimple-platform"), "call", "--url", "http://127.0.0.1:9", "--input", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_BAD_INPUT
    assert "notes.wav is not a readable audio file" in proc.stderr
    assert "cannot reach" not in proc.stderr  # the file is checked before the network


# --- against the real platform --------------------------------------------------------------------


@pytest.mark.slow
def test_silence_only_is_zero_turns_and_a_note(platform_url: str, tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-V1", "-n", "-r", "16000", "-c", "1", str(silence), "trim", "0", "3"], check=True)
    report_path = tmp_path / "r.json"
    proc = subprocess.run(
        [
            str(VENV_BIN / "conversimple-platform"),
            "call",
            "--url",
            platform_url,
            "--api-key",
            API_KEY,
            "--input",
            str(silence),
            "--report",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(report_path.read_text())
    assert report["turns"] == [] and report["status"] == "no_speech"
    assert f"no speech detected in {silence}" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2)])
async def test_resampled_speech_is_understood(platform_url: str, tmp_path: Path, rate: int, channels: int) -> None:
    speech = speak("What time is it in London?", tmp_path / "q.wav", pad_before=0.5)
    variant = sox(speech, tmp_path / f"q_{rate}_{channels}.wav", rate=rate, channels=channels)
    report = await place_call(platform_url, None, variant, api_key=API_KEY)
    assert report["status"] == "ok", report["notes"]
    assert len(report["turns"]) == 1
    heard = set(report["turns"][0]["user_text"].lower().strip("?.!").split())
    # Telephone-band audio costs whisper tiny a word now and then ("London" -> "one end").
    assert len(heard & {"what", "time", "is", "it", "in", "london"}) >= 4, heard


@pytest.mark.slow
async def test_sixty_second_monologue(platform_url: str, tmp_path: Path) -> None:
    sentence = speak(
        "I would like to tell you about my trip through the mountains, where the weather changed "
        "every hour and the trains were always late, but the views were worth every minute",
        tmp_path / "s.wav",
        pad_before=0.0,
        pad_after=0.15,
    )
    monologue = tmp_path / "monologue.wav"
    repeats = int(np.ceil(60 / (read_audio(sentence).size / SAMPLE_RATE)))
    await asyncio.to_thread(
        subprocess.run, ["sox", "-V1", *[str(sentence)] * repeats, str(monologue), "trim", "0", "60"], check=True
    )
    report = await place_call(platform_url, None, monologue, api_key=API_KEY)
    assert report["status"] == "ok", report["notes"]
    assert report["input_duration_s"] == pytest.approx(60, abs=0.1)
    # The platform cuts turns at its max turn length (30 s): two or more turns, all completed.
    assert len(report["turns"]) >= 2
    assert all(t["completed"] for t in report["turns"])
    assert report["call_duration_s"] < report["input_duration_s"] + 60
