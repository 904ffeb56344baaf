"""End of turn: how fast complete questions commit, and whether questions with a pause mid-sentence
are answered as one turn. Real platform process, real WebRTC calls, Piper's voice.

    .venv/bin/python -m bench.turn_taking [--turn-detection smart-turn|silence] [--out FILE.json]

Complete questions are the voice-latency bench's; split ones are a first half, 0.6-1.0 s of silence,
then the rest, made from two Piper clips. Without --turn-detection the platform's default is used
(that is how a build from before the option is measured). Reports `end_of_turn_delay` p50/p95 of
the complete questions, how many were held, how many split questions became exactly one turn with
both halves' words, and the turn model's time per call (from the `TurnCommitted`/`TurnHeld` events).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import save_result
from bench.voice_latency import UTTERANCES, percentile

SPLIT = [
    ("Can you tell me the weather in", "Lisbon?"),
    ("I'd like to book a table for", "Friday at eight."),
    ("So I was wondering if", "you could recommend a good book."),
    ("How many days are there in", "a leap year?"),
    ("Please book an appointment for", "tomorrow at ten."),
    ("Tell me the time in", "Tokyo, please."),
    ("What is the capital of", "Australia?"),
    ("I'd like to know the weather in", "Paris."),
]
PAUSES_S = (0.6, 0.8, 1.0)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def _make_wavs(folder: Path) -> tuple[list[Path], list[Path]]:
    from platform_core.audio_files import write_wav
    from platform_core.engines.tts.piper import PiperTTS
    from platform_core.models.store import ensure_model

    tts = PiperTTS(ensure_model("piper-joe"))
    rate = tts.sample_rate

    def said(text: str) -> np.ndarray:
        pcm = np.concatenate(list(tts.synthesize(text, steady=True)))
        voiced = np.nonzero(np.abs(pcm) > 300)[0]
        return pcm[voiced[0] : voiced[-1] + 1]

    edge = np.zeros(rate // 2, np.int16)
    complete = [
        write_wav(folder / f"q{i:02d}.wav", np.concatenate([edge, said(t), edge]), rate)
        for i, t in enumerate(UTTERANCES)
    ]
    split = []
    for i, (first, second) in enumerate(SPLIT):
        pause = np.zeros(int(rate * PAUSES_S[i % len(PAUSES_S)]), np.int16)
        pcm = np.concatenate([edge, said(first), pause, said(second), edge])
        split.append(write_wav(folder / f"split{i:02d}.wav", pcm, rate))
    tts.close()
    return complete, split


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.harness import start_platform, stop_platform
    from platform_core.calls import place_call

    extra = ["--turn-detection", args.turn_detection] if args.turn_detection else []
    with tempfile.TemporaryDirectory() as tmp:
        complete_wavs, split_wavs = _make_wavs(Path(tmp))
        platform = start_platform(Path(tmp), *extra)
        events: list[dict[str, Any]] = []

        def keep(event: Any) -> None:
            if event.kind in ("TurnHeld", "TurnCommitted"):
                events.append(event.to_json())

        async def call(wav: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            events.clear()
            report = await place_call(platform.url, None, input_wav=wav, api_key=platform.api_key, on_event=keep)
            return report, list(events)

        complete, split = [], []
        try:
            for text, wav in zip(UTTERANCES, complete_wavs, strict=True):
                report, seen = await call(wav)
                delay = [t["metrics"].get("end_of_turn_delay") for t in report["turns"]]
                held = sum(e["kind"] == "TurnHeld" for e in seen)
                complete.append(
                    {
                        "said": text,
                        "turns": len(report["turns"]),
                        "end_of_turn_delay": delay,
                        "held": held,
                        "events": seen,
                    }
                )
                print(f"complete  turns={len(report['turns'])} held={held} eot={delay} {text!r}", flush=True)
            for (first, second), wav in zip(SPLIT, split_wavs, strict=True):
                report, seen = await call(wav)
                texts = [t["user_text"] for t in report["turns"]]
                need = _words(first + " " + second) - {"a", "the", "in", "of", "for", "if", "to"}
                heard = _words(" ".join(texts[:1]))
                one = len(texts) == 1 and len(need & heard) >= 0.7 * len(need)
                split.append({"said": f"{first} ... {second}", "turns": texts, "as_one": one, "events": seen})
                print(f"split     one_turn={one} turns={texts}", flush=True)
        finally:
            stop_platform(platform.process)
    delays = [d for c in complete for d in c["end_of_turn_delay"][:1] if d is not None]
    model_s = [e["model_s"] for c in complete + split for e in c["events"] if e.get("model_s") is not None]
    summary = {
        "turn_detection": args.turn_detection or "(the platform's default)",
        "end_of_turn_delay_p50": percentile(delays, 50) if delays else None,
        "end_of_turn_delay_p95": percentile(delays, 95) if delays else None,
        "complete_questions": len(complete),
        "complete_questions_one_turn": sum(c["turns"] == 1 for c in complete),
        "complete_questions_held": sum(c["held"] > 0 for c in complete),
        "split_questions": len(split),
        "split_questions_as_one_turn": sum(s["as_one"] for s in split),
        "model_s_p50": percentile(model_s, 50) if model_s else None,
        "model_s_p95": percentile(model_s, 95) if model_s else None,
    }
    return {"summary": summary, "complete": complete, "split": split}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench/results/turn_taking.json")
    parser.add_argument("--turn-detection", choices=["smart-turn", "silence"], default=None)
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = asyncio.run(run(args))
    for key, value in result["summary"].items():
        shown = f"{value * 1000:.0f} ms" if isinstance(value, float) else value
        print(f"{key:32} {shown}")
    print(f"({time.monotonic() - started:.0f} s)")
    save_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
