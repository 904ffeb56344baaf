"""`conversimple-platform demo`: the whole loop headless, in one process, with no microphone.

Starts the platform on a free port, speaks the question with the platform's own voice into a WAV,
places a real WebRTC call with it and prints the report.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from platform_core.audio_files import write_wav
from platform_core.cli.progress import print_progress
from platform_core.config import PlatformConfig


def write_speech_wav(tts_chunks: list[np.ndarray], rate: int, path: Path) -> None:
    write_wav(path, np.concatenate(tts_chunks) if tts_chunks else np.zeros(rate, dtype=np.int16), rate)


async def run_demo(text: str, agent_id: str | None) -> int:
    from platform_core.calls import format_report, place_call
    from platform_core.platform import Platform, PlatformError

    config = PlatformConfig()
    config.server.port = 0
    platform = Platform(config)
    platform.bus.subscribe(print_progress)
    try:
        await platform.start()
        engines = platform.engines
        assert engines is not None
        chunks = [chunk async for chunk in engines.synthesize(text)]
        with tempfile.TemporaryDirectory() as tmp:
            question = Path(tmp) / "question.wav"
            write_speech_wav(chunks, engines.tts.sample_rate, question)
            print(f"calling {platform.url} with the spoken question: {text!r}", flush=True)
            report = await place_call(platform.url, agent_id, input_wav=question, api_key=config.server.api_key)
        print(format_report(report))
        return 0 if report.get("turns") else 1
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await platform.stop()
