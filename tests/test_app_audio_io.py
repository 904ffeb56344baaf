"""Real sounddevice streams through a private PulseAudio: the virtual microphone and speaker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from app.audio_io import AudioDeviceError, GatedSource, MicrophoneTrack, SpeakerOutput, list_devices
from app.mouth_to_ear import MouthToEarMeter
from platform_core.audio import FRAME_SAMPLES, WEBRTC_RATE
from platform_core.audio_files import read_audio, write_wav
from tests.desktop_env import PulseEnv


def signal(seconds: float = 1.5, seed: int = 1) -> np.ndarray:
    """Noise bursts: a distinctive signal whose position cross-correlation finds exactly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 6000, int(seconds * WEBRTC_RATE))
    envelope = (np.sin(np.linspace(0, 12 * np.pi, len(x))) > 0).astype(float)
    return np.clip(x * envelope, -32768, 32767).astype(np.int16)


def best_match(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Peak normalised cross-correlation of `reference` inside `recorded`."""
    rec = recorded.astype(np.float64)
    ref = reference.astype(np.float64)
    n = len(rec) + len(ref)
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    lag = int(np.argmax(corr[: len(rec)]))
    seg = rec[lag : lag + len(ref)]
    if len(seg) < len(ref):
        return 0.0
    return float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-9))


def pieces_found(recorded: np.ndarray, reference: np.ndarray, piece_s: float = 0.1) -> float:
    """The share of `reference`'s sounding 100 ms pieces found intact in `recorded`, in order.

    An underrun (a late writer, a loaded machine) inserts a gap and shifts what follows: one
    alignment then matches only part of the signal, but every piece still arrives whole.
    """
    rec = recorded.astype(np.float64)
    energy = np.concatenate([[0.0], np.cumsum(rec * rec)])
    size = int(piece_s * WEBRTC_RATE)
    found = sounding = 0
    after = 0
    for start in range(0, len(reference) - size + 1, size):
        piece = reference[start : start + size].astype(np.float64)
        if np.linalg.norm(piece) < 1000 * np.sqrt(size) / 10:  # mostly the signal's silent half
            continue
        sounding += 1
        n = len(rec) + size
        corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(piece, n)), n)[: len(rec) - size + 1]
        local = np.sqrt(energy[size:] - energy[:-size])[: len(corr)]
        r = corr / (np.maximum(local, 1.0) * np.linalg.norm(piece))  # silence: FFT noise over 1, not over 0
        lag = int(np.argmax(r))
        if r[lag] > 0.9 and lag >= after:
            found += 1
            after = lag
    return found / max(sounding, 1)


def test_devices_are_listed(pulse_env: PulseEnv) -> None:
    inputs, outputs = list_devices(rescan=True)
    assert "vmic" in [d.name for d in inputs]
    assert "vspeaker" in [d.name for d in outputs]


async def test_wav_played_into_virtual_mic_arrives_through_the_track(pulse_env: PulseEnv, tmp_path: Path) -> None:
    list_devices(rescan=True)
    reference = signal()
    wav = write_wav(tmp_path / "ref.wav", reference)
    track = MicrophoneTrack("vmic")
    sent: list[np.ndarray] = []
    track.on_frame.append(lambda s, t: sent.append(s))
    try:
        for _ in range(10):  # let the stream settle
            await track.recv()
        player = pulse_env.play_into_mic(wav)
        frames = []
        for _ in range(int(2.5 * WEBRTC_RATE / FRAME_SAMPLES)):
            frame = await track.recv()
            assert frame.sample_rate == WEBRTC_RATE and frame.samples == FRAME_SAMPLES
            frames.append(frame.to_ndarray().reshape(-1))
        pulse_env.stop_process(player)
    finally:
        track.stop()
    recorded = np.concatenate(frames)
    assert pieces_found(recorded, reference) >= 0.9, f"whole: {best_match(recorded, reference):.2f}"
    assert len(sent) >= len(frames)


async def test_mute_sends_silence(pulse_env: PulseEnv, tmp_path: Path) -> None:
    list_devices(rescan=True)
    wav = write_wav(tmp_path / "ref.wav", signal(1.0))
    track = MicrophoneTrack("vmic")
    track.muted = True
    player = pulse_env.play_into_mic(wav)
    try:
        frames = [(await track.recv()).to_ndarray() for _ in range(40)]
    finally:
        pulse_env.stop_process(player)
        track.stop()
    assert all(not f.any() for f in frames)


async def test_speaker_output_reaches_the_virtual_speaker(pulse_env: PulseEnv, tmp_path: Path) -> None:
    list_devices(rescan=True)
    reference = signal(1.0, seed=2)
    out = tmp_path / "speaker.wav"
    recorder = pulse_env.record_speaker(out)
    await asyncio.sleep(0.5)
    speaker = SpeakerOutput("vspeaker")
    played_at: list[float] = []
    speaker.on_played.append(lambda s, t: played_at.append(t) if s.any() else None)
    try:
        for start in range(0, len(reference), FRAME_SAMPLES):  # 20 ms frames, as the agent's audio arrives
            speaker.write(reference[start : start + FRAME_SAMPLES])
            await asyncio.sleep(0.018)
        await asyncio.sleep(1.0)
        assert speaker.alive
    finally:
        speaker.close()
        pulse_env.stop_process(recorder)
    recorded = read_audio(out)
    whole = best_match(recorded, reference)  # below 1 when an underrun put a gap in the middle
    assert pieces_found(recorded, reference) >= 0.9, f"whole: {whole:.2f}, underruns: {speaker.underruns}"
    assert played_at and abs(played_at[0] - time.monotonic()) < 5


def test_unknown_device_is_explained(pulse_env: PulseEnv) -> None:
    list_devices(rescan=True)
    with pytest.raises(AudioDeviceError) as err:
        SpeakerOutput("no-such-speaker")
    assert "not available" in err.value.message and "vspeaker" in err.value.hint


async def test_wav_track_is_paced_in_real_time(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "8k.wav", signal(0.5)[::6], rate=8000)  # resampled to 48 kHz
    track = GatedSource.from_wav(wav)
    t0 = time.monotonic()
    frames = [await track.recv() for _ in range(30)]
    elapsed = time.monotonic() - t0
    # Paced: frame 30 is due 29 x 20 ms after the first; late by a few scheduler slices on a loaded machine.
    assert 29 * 0.02 - 0.01 <= elapsed < 29 * 0.02 + 0.3
    assert [f.pts for f in frames[:3]] == [0, FRAME_SAMPLES, 2 * FRAME_SAMPLES]
    assert track.finished.is_set()


def test_mouth_to_ear_meter() -> None:
    got: list[tuple[int, float]] = []
    meter = MouthToEarMeter(lambda turn, value: got.append((turn, value)))
    loud = (np.ones(FRAME_SAMPLES) * 8000).astype(np.int16)
    quiet = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    meter.on_mic(loud, 10.0)  # voiced until 10.02
    meter.on_mic(quiet, 10.02)
    meter.on_turn_started(1, 10.5)
    meter.on_speaker(quiet, 10.9)
    half = np.concatenate([quiet[: FRAME_SAMPLES // 2], loud[: FRAME_SAMPLES // 2]])
    meter.on_speaker(half, 11.0)
    meter.on_speaker(loud, 11.02)  # only the first audible block counts
    assert got == [(1, pytest.approx(11.0 + 0.01 - 10.02))]
    meter.on_turn_started(2, 30.0)  # typed turn: no recent speech, not measured
    meter.on_speaker(loud, 31.0)
    assert len(got) == 1
