"""Audio conditions of a turn, applied with numpy to the caller's speech before it is sent.

Speed (a resampling: faster and higher, like a tape), gain, a telephone band (300-3400 Hz) and
background noise at a signal-to-noise ratio measured over the speech itself.
"""

from __future__ import annotations

import numpy as np

from platform_core.audio import Int16Array
from platform_core.qa.scenario import AudioConditions

_TELEPHONE_HZ = (300.0, 3400.0)
_HUM_HZ = 50.0


def resample(pcm: Int16Array, rate: int, out_rate: int) -> Int16Array:
    """Linear-interpolation resampling (speech, for a test: quality beyond that is not needed)."""
    if rate == out_rate or pcm.size == 0:
        return pcm.astype(np.int16, copy=False)
    n = round(pcm.size * out_rate / rate)
    x = np.linspace(0.0, pcm.size - 1, n)
    return np.round(np.interp(x, np.arange(pcm.size), pcm.astype(np.float32))).astype(np.int16)


def _speech_rms(signal: np.ndarray, rate: int) -> float:
    """RMS over the louder half of 20 ms frames: the speech, not the pauses around it."""
    size = rate // 50
    n = signal.size // size
    if n == 0:
        return float(np.sqrt(np.mean(signal**2))) if signal.size else 0.0
    power = np.mean(signal[: n * size].reshape(n, size) ** 2, axis=1)
    loud = power[power >= np.median(power)]
    return float(np.sqrt(np.mean(loud)))


def _noise(kind: str, n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "hum":
        t = np.arange(n) / rate
        return np.sin(2 * np.pi * _HUM_HZ * t) + 0.5 * np.sin(2 * np.pi * 3 * _HUM_HZ * t)
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)  # pink: 1/f power, shaped in the frequency domain
    f = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum[1:] /= np.sqrt(f[1:])
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n)


def _band(signal: np.ndarray, rate: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(signal)
    f = np.fft.rfftfreq(signal.size, 1.0 / rate)
    spectrum[(f < low) | (f > high)] = 0.0
    return np.fft.irfft(spectrum, signal.size)


def apply_conditions(pcm: Int16Array, rate: int, conditions: AudioConditions, seed: int = 0) -> Int16Array:
    """`pcm` (int16 mono at `rate`) as the caller's line would carry it; same rate out."""
    if not conditions.changed or pcm.size == 0:
        return pcm
    if conditions.speed != 1.0:
        pcm = resample(pcm, round(rate * conditions.speed), rate)
    signal = pcm.astype(np.float64) / 32768.0
    signal *= 10 ** (conditions.gain_db / 20)
    if conditions.telephone:
        signal = _band(signal, rate, *_TELEPHONE_HZ)
    if conditions.snr_db is not None:
        noise = _noise(conditions.noise, signal.size, rate, np.random.default_rng(seed))
        noise_rms = float(np.sqrt(np.mean(noise**2))) or 1.0
        target = _speech_rms(signal, rate) / 10 ** (conditions.snr_db / 20)
        signal = signal + noise * (target / noise_rms)
    return np.round(np.clip(signal, -1.0, 32767 / 32768) * 32768).astype(np.int16)
