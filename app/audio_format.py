"""The audio format the app exchanges with the platform: 48 kHz mono int16, 20 ms frames."""

from __future__ import annotations

import numpy as np

RATE = 48_000
FRAME = 960  # 20 ms


def rms_dbfs(samples: np.ndarray) -> float:
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64) / 32768.0))))
    return 20.0 * float(np.log10(max(rms, 1e-6)))
