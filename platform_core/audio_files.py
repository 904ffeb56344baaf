"""Audio files, read and written in one place: any common audio file in, 16-bit mono WAV out.

`read_audio` decodes WAV (any PCM or float format, rate, channel count), FLAC, OGG/Opus or MP3 to
mono int16 at the rate asked for. `write_wav` writes a whole file atomically (a temp file renamed
into place: readers never see half a file); `WavWriter` streams a recording whose header is kept
valid after every block, so a crash loses at most the last block.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from platform_core.audio import WEBRTC_RATE, Int16Array
from platform_core.errors import StudioError
from platform_core.files import atomic_file

_FORMATS_HINT = (
    "Use a WAV file (PCM 8/16/24/32-bit or float, any sample rate, mono or stereo); "
    "FLAC, OGG/Opus and MP3 files also work."
)


class AudioFileError(StudioError, ValueError):
    """An input file that cannot be played as the caller's voice; the hint names the formats that work."""


def read_audio(path: str | Path, rate: int = WEBRTC_RATE) -> Int16Array:
    """Decode an audio file to int16 mono samples at `rate` (48 kHz unless told).

    Raises `AudioFileError` (a ValueError) naming the file and the formats that work, for a missing
    file, a file that is not audio, or one without samples.
    """
    import av  # on first use: the app imports this module before its window is up
    import av.error

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file", _FORMATS_HINT)
    chunks: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFileError(f"{path} contains no audio stream", _FORMATS_HINT)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        reason = exc.strerror or str(exc)
        raise AudioFileError(f"{path} is not a readable audio file ({reason})", _FORMATS_HINT) from exc
    samples = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if samples.size == 0:
        raise AudioFileError(f"{path} contains no audio samples (empty recording)", _FORMATS_HINT)
    return samples


def _pcm_bytes(samples: Int16Array, channels: int) -> bytes:
    """Mono int16 samples as little-endian 16-bit frames of `channels` identical channels."""
    pcm = np.asarray(samples).astype("<i2", copy=False).reshape(-1)
    return (np.repeat(pcm[:, None], channels, axis=1) if channels > 1 else pcm).tobytes()


def write_wav(path: str | Path, samples: Int16Array, rate: int = WEBRTC_RATE, channels: int = 1) -> Path:
    """Write int16 mono `samples` as a 16-bit WAV (the same samples on every channel); returns the path.

    Atomic: the file is written next to `path` under a temporary name, then renamed into place.
    """
    path = Path(path)
    with atomic_file(path) as fh, wave.open(fh, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(_pcm_bytes(samples, channels))
    return path


class WavWriter:
    """A 16-bit mono WAV written block by block (a call's recording); the file appears on the first block.

    `wave` rewrites the header's sizes after every block, so the file on disk is a complete WAV of
    what was written so far: a crash loses at most the last block, never the recording.
    """

    def __init__(self, path: str | Path, rate: int = WEBRTC_RATE) -> None:
        self.path = Path(path)
        self.rate = rate
        self.samples_written = 0
        self._wav: wave.Wave_write | None = None

    def write(self, samples: Int16Array) -> None:
        if self._wav is None:
            self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (closed in close())
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.rate)
        self._wav.writeframes(_pcm_bytes(samples, 1))
        self.samples_written += len(samples)

    def close(self) -> None:
        """Finish the file; safe to call twice."""
        if self._wav is not None:
            self._wav.close()
            self._wav = None
