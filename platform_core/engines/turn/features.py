"""Whisper's log-mel spectrogram in numpy: the input the Smart Turn model was trained on.

Whisper's recipe: 25 ms Hann windows (400 samples) every 10 ms (160), centred on each hop by
reflecting the signal at both ends, power spectrum, 80 Slaney mel bands (the same filterbank the
whisper.cpp conversion writes, `models/whisper_ggml.py`), log10 floored at 1e-10, the last frame
dropped, a dynamic range of 8 (80 dB) below the loudest band, then scaled by (x + 4) / 4. Smart
Turn also normalises the waveform to zero mean and unit variance first (over the whole window,
the zero padding included), as Hugging Face's Whisper feature extractor does with `do_normalize`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from platform_core.models.whisper_ggml import mel_filterbank

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80


@lru_cache(maxsize=1)
def _analysis() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(periodic Hann window, mel filters transposed to (n_fft//2+1, n_mels)), built once."""
    n = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)  # periodic: torch.hann_window's default
    return window, mel_filterbank(N_MELS, SAMPLE_RATE, N_FFT).astype(np.float64).T


def log_mel(audio: npt.NDArray[np.float32], *, normalize: bool = True) -> npt.NDArray[np.float32]:
    """(80, len(audio) // 160) log-mel features of 16 kHz mono `audio`."""
    x = audio.astype(np.float32)
    if normalize:
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    window, filters = _analysis()
    half = N_FFT // 2
    padded = np.pad(x.astype(np.float64), half, mode="reflect")
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    starts = np.arange(n_frames) * HOP
    frames = padded[starts[:, None] + np.arange(N_FFT)[None, :]] * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, n_fft//2+1)
    mel = np.log10(np.maximum(power @ filters, 1e-10))[:-1]  # whisper drops the frame past the end
    mel = np.maximum(mel, mel.max() - 8.0)
    scaled: npt.NDArray[np.float32] = ((mel + 4.0) / 4.0).T.astype(np.float32)
    return scaled
