"""Endpointing: turn VAD probabilities into speech-start and end-of-turn decisions. Pure code.

Each call to `feed` covers one VAD frame (32 ms at 16 kHz). Speech must last `min_speech_s` to
count (clicks and breaths are ignored); a turn ends after `endpoint_silence_s` of silence. The
caller is "speaking" early enough for barge-in (the agent pauses) after `barge_in_speech_s` of speech,
and long enough to interrupt it after `interrupt_speech_s` (`interrupt`). A `pause` signal
comes `pause_s` into the silence, so the voice loop can start transcribing before the turn is sure
to be over (if the caller goes on, that work is thrown away).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TurnSignal:
    kind: Literal["speech_started", "barge_in", "interrupt", "pause", "turn_ended", "speech_discarded"]
    t: float
    # For turn_ended: when the caller actually stopped speaking (end of the last speech frame).
    speech_ended_at: float = 0.0
    speech_started_at: float = 0.0
    speech_s: float = 0.0  # speech so far in the utterance (for interrupt, turn_ended, speech_discarded)


class TurnDetector:
    def __init__(
        self,
        *,
        threshold: float = 0.5,
        min_speech_s: float = 0.15,
        barge_in_speech_s: float = 0.1,
        interrupt_speech_s: float = 0.6,
        endpoint_silence_s: float = 0.35,
        max_turn_s: float = 30.0,
        pause_s: float = 0.15,
    ) -> None:
        self.threshold = threshold
        # Hysteresis: once speaking, a lower probability still counts as speech.
        self.release_threshold = max(0.05, threshold - 0.15)
        self.min_speech_s = min_speech_s
        self.barge_in_speech_s = barge_in_speech_s
        self.interrupt_speech_s = interrupt_speech_s
        self.endpoint_silence_s = endpoint_silence_s
        self.max_turn_s = max_turn_s
        self.pause_s = min(pause_s, endpoint_silence_s)
        self.reset()

    def reset(self) -> None:
        self.in_speech = False  # inside an utterance (possibly in a short pause)
        self.confirmed = False  # the utterance is long enough to be a turn
        self.barge_in_sent = False
        self.interrupt_sent = False
        self.speech_start = 0.0
        self.speech_s = 0.0
        self.last_speech_end = 0.0
        self.pause_sent = False

    def feed(self, probability: float, t_end: float, frame_s: float) -> list[TurnSignal]:
        """Process one frame that ended at `t_end` (monotonic seconds) and lasted `frame_s`."""
        signals: list[TurnSignal] = []
        is_speech = probability >= (self.release_threshold if self.in_speech else self.threshold)
        if is_speech:
            if not self.in_speech:
                self.in_speech = True
                self.speech_start = t_end - frame_s
                self.speech_s = 0.0
            self.speech_s += frame_s
            self.last_speech_end = t_end
            self.pause_sent = False
            if not self.barge_in_sent and self.speech_s >= self.barge_in_speech_s:
                self.barge_in_sent = True
                signals.append(TurnSignal("barge_in", t_end, speech_started_at=self.speech_start))
            if not self.interrupt_sent and self.speech_s >= self.interrupt_speech_s - 1e-9:
                self.interrupt_sent = True
                signals.append(
                    TurnSignal("interrupt", t_end, speech_started_at=self.speech_start, speech_s=self.speech_s)
                )
            if not self.confirmed and self.speech_s >= self.min_speech_s:
                self.confirmed = True
                signals.append(TurnSignal("speech_started", t_end, speech_started_at=self.speech_start))
            if self.confirmed and t_end - self.speech_start >= self.max_turn_s:
                signals.append(self._end(t_end))
        elif self.in_speech:
            silence = t_end - self.last_speech_end
            if silence >= self.endpoint_silence_s:
                signals.append(self._end(t_end))
            elif self.confirmed and not self.pause_sent and silence >= self.pause_s - 1e-9:
                self.pause_sent = True
                signals.append(
                    TurnSignal(
                        "pause", t_end, speech_ended_at=self.last_speech_end, speech_started_at=self.speech_start
                    )
                )
        return signals

    def _end(self, t: float) -> TurnSignal:
        kind: Literal["turn_ended", "speech_discarded"] = "turn_ended" if self.confirmed else "speech_discarded"
        signal = TurnSignal(
            kind, t, speech_ended_at=self.last_speech_end, speech_started_at=self.speech_start, speech_s=self.speech_s
        )
        self.reset()
        return signal
