"""Interruptions on the default engines, over real WebRTC calls: do backchannels and coughs stop answers,
and how fast does a real barge-in silence the agent?

    .venv/bin/python -m bench.interruptions [--barge-ins N] [--out FILE.json]

Each trial is its own call to an in-process platform: the caller (Piper's voice) asks for a long story,
and 1.5 s into the spoken answer plays one sound over it. Ten backchannels and coughs (`SOUNDS`): an
answer is "stopped" when its turn completes interrupted or another turn starts. N full sentences: the
barge-in delay, as the platform measures it (`barge_in_delay`: the caller's first speech frame reaching
the platform to the agent's audio stopping) and as the caller hears it (the sentence's first sample sent
to the last voiced frame of the agent received before a silence of GAP_S). Uses only events and calls
that predate the pause-and-resume rule, so the same file measures the code before it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from platform_core.audio import WEBRTC_RATE, MonoResampler
from platform_core.calls.tracker import AgentVoiceClock
from platform_core.config import PlatformConfig
from platform_core.events import AgentSpeakingChanged, Event, MetricMeasured, TurnCompleted, TurnStarted
from platform_core.platform import Platform
from platform_core.transport.client import CallClient
from platform_core.transport.wav_source import PacedAudioTrack

QUESTION = "Please tell me a long story about a dragon and a brave knight."
SPOKEN = ["Mm-hmm.", "Okay.", "Right.", "Uh-huh.", "Yeah.", "Sure."]
NOISES = {"cough 100 ms": 0.10, "cough 150 ms": 0.15, "cough 200 ms": 0.20, "click": 0.005}
SENTENCES = [
    "Wait, tell me about the weather in Paris instead.",
    "Stop please, what time is it in London?",
    "Hold on, how many days are there in a week?",
]
INTO_ANSWER_S = 1.5  # how far into the spoken answer the sound is played
SETTLE_S = 3.5  # after the sound: long enough for a cut, or a turn answering it, to show
GAP_S = 0.6  # the agent's silence that counts as "stopped" on the caller's side


def burst(seconds: float, seed: int) -> np.ndarray:
    """A cough-like burst (noise, sharp attack, fast decay) or, for a few ms, a click; 48 kHz int16."""
    n = max(1, int(seconds * WEBRTC_RATE))
    envelope = np.exp(-np.arange(n) / max(1.0, n / 4))
    noise = np.random.default_rng(seed).standard_normal(n) * 9000 * envelope
    return noise.clip(-32000, 32000).astype(np.int16)


class Voice:
    def __init__(self) -> None:
        from platform_core.engines.tts.piper import PiperTTS
        from platform_core.models.store import ensure_model

        self.tts = PiperTTS(ensure_model("piper-joe"))

    def say(self, text: str) -> np.ndarray:
        pcm = np.concatenate(list(self.tts.synthesize(text, steady=True)))
        return MonoResampler(WEBRTC_RATE).resample(pcm, self.tts.sample_rate)


def _first_loud_s(pcm: np.ndarray) -> float:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return float(loud[0]) / WEBRTC_RATE if loud.size else 0.0


def _silenced_at(voiced: list[float], onset: float) -> float | None:
    """The end of the last voiced agent frame before the first silence of GAP_S after `onset`."""
    after = [v for v in voiced if v >= onset - 0.02]
    for a, b in itertools.pairwise(after):
        if b - a >= GAP_S:
            return a + 0.02
    return None


async def trial(platform: Platform, api_key: str, question: np.ndarray, sound: np.ndarray) -> dict[str, Any]:
    mic, clock = PacedAudioTrack(), AgentVoiceClock()
    events: list[Event] = []
    unsubscribe = platform.bus.subscribe(events.append)
    client = CallClient(platform.url, source=mic, api_key=api_key, on_agent_audio=clock)
    try:
        cid = await client.connect()

        def seen(kind: type[Event], **match: Any) -> list[Any]:
            return [
                e
                for e in events
                if isinstance(e, kind)
                and getattr(e, "conversation_id", None) == cid
                and all(getattr(e, k) == v for k, v in match.items())
            ]

        mic.say(question)
        deadline = time.monotonic() + 120
        while not seen(AgentSpeakingChanged, speaking=True):
            if time.monotonic() > deadline:
                return {"error": "the agent never spoke"}
            await asyncio.sleep(0.02)
        await asyncio.sleep(INTO_ANSWER_S)
        onset = time.monotonic() + _first_loud_s(sound)
        mic.say(sound)
        await asyncio.sleep(len(sound) / WEBRTC_RATE + SETTLE_S)
        cut = [e for e in seen(TurnCompleted, turn_id=1) if e.interrupted]
        delays = [e.value for e in seen(MetricMeasured, turn_id=1, name="barge_in_delay")]
        silenced = _silenced_at(clock.voiced, onset) if cut else None
        return {
            "stopped": bool(cut) or bool(seen(TurnStarted, turn_id=2)),
            "answered_as_turn": bool(seen(TurnStarted, turn_id=2)),
            "barge_in_delay": delays[0] if delays else None,
            "caller_side_delay": round(silenced - onset, 4) if silenced is not None else None,
            "decisions": [e.kind for e in events if e.kind.startswith("Agent") and e.kind != "AgentSpeakingChanged"],
        }
    finally:
        unsubscribe()
        await client.hangup()


def _p(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(sorted(values), n=100, method="inclusive")[q - 1], 4)


async def run(barge_ins: int) -> dict[str, Any]:
    voice = Voice()
    question = voice.say(QUESTION)
    sounds = {text: voice.say(text) for text in SPOKEN} | {
        name: burst(s, i) for i, (name, s) in enumerate(NOISES.items())
    }
    config = PlatformConfig()
    config.server.port = 0
    config.default_agent.system_prompt = "You are a storyteller. Tell long, detailed stories."
    config.voice.max_reply_tokens = 70
    platform = Platform(config)
    await platform.start()
    try:
        backchannels = {}
        for name, pcm in sounds.items():
            backchannels[name] = await trial(platform, config.server.api_key, question, pcm)
            print(f"  {name:14s} {backchannels[name]}", flush=True)
        barges = []
        for i in range(barge_ins):
            text = SENTENCES[i % len(SENTENCES)]
            barges.append(await trial(platform, config.server.api_key, question, voice.say(text)))
            print(f"  barge-in {i + 1}: {barges[-1]}", flush=True)
    finally:
        await platform.stop()
    platform_delays = [b["barge_in_delay"] for b in barges if b.get("barge_in_delay") is not None]
    caller_delays = [b["caller_side_delay"] for b in barges if b.get("caller_side_delay") is not None]
    return {
        "answers_stopped_per_10": sum(bool(r.get("stopped")) for r in backchannels.values()),
        "answered_as_a_turn": sum(bool(r.get("answered_as_turn")) for r in backchannels.values()),
        "barge_ins": len(barges),
        "barge_ins_that_stopped": sum(bool(b.get("stopped")) for b in barges),
        "barge_in_delay": {"p50": _p(platform_delays, 50), "p95": _p(platform_delays, 95), "n": len(platform_delays)},
        "caller_side_delay": {"p50": _p(caller_delays, 50), "p95": _p(caller_delays, 95), "n": len(caller_delays)},
        "backchannels": backchannels,
        "barge_in_trials": barges,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--barge-ins", type=int, default=10)
    parser.add_argument("--out", default="bench/results/interruptions.json")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.barge_ins))
    print(
        f"answers stopped per 10 backchannels/coughs: {result['answers_stopped_per_10']} "
        f"(answered as a turn: {result['answered_as_a_turn']})\n"
        f"barge-ins that stopped the answer: {result['barge_ins_that_stopped']}/{result['barge_ins']}\n"
        f"barge_in_delay (platform) p50 {result['barge_in_delay']['p50']} s, p95 {result['barge_in_delay']['p95']} s\n"
        f"caller-side delay p50 {result['caller_side_delay']['p50']} s, p95 {result['caller_side_delay']['p95']} s"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
