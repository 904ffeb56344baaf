"""Each engine's health: ok, restarting (with the reason) or failed, and who is told when it changes.

Engines that watch themselves (the embedded LLM's child process) report here; the platform turns a
change into an `EngineHealthChanged` event and `/healthz` reads the snapshot. Changes may come from
any thread; listeners are called on the reporting thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

EngineState = Literal["ok", "restarting", "failed"]
HealthListener = Callable[[str, "EngineStatus"], None]  # (engine, its new status)
StateReporter = Callable[[EngineState, str], None]  # what a watched engine calls: (state, reason)


@dataclass(frozen=True)
class EngineStatus:
    state: EngineState = "ok"
    reason: str = ""
    restarts: int = 0  # restarts that brought the engine back
    last_restart_s: float | None = None  # how long the last restart took, from the death detected
    since: float = 0.0  # time.time() of the last change


class EngineHealth:
    """The health of every engine, by name ("stt", "tts", "llm")."""

    def __init__(self, engines: tuple[str, ...] = ("stt", "tts", "llm")) -> None:
        self._lock = threading.Lock()
        self._status = {name: EngineStatus(since=time.time()) for name in engines}
        self._down_at: dict[str, float] = {}
        self._listeners: list[HealthListener] = []

    def subscribe(self, listener: HealthListener) -> None:
        self._listeners.append(listener)

    def reporter(self, engine: str) -> StateReporter:
        """The callback a watched engine reports its state changes through."""
        return lambda state, reason: self.set(engine, state, reason)

    def set(self, engine: str, state: EngineState, reason: str = "") -> None:
        now = time.monotonic()
        with self._lock:
            old = self._status.get(engine, EngineStatus())
            restarts, last = old.restarts, old.last_restart_s
            if state == "ok":
                reason = ""
                if old.state != "ok":
                    restarts += 1
                    last = round(now - self._down_at.pop(engine, now), 3)
            else:
                self._down_at.setdefault(engine, now)
            status = EngineStatus(state, reason, restarts, last, time.time())
            if (old.state, old.reason) == (status.state, status.reason):
                return
            self._status[engine] = status
        for listener in list(self._listeners):
            listener(engine, status)

    def snapshot(self) -> dict[str, EngineStatus]:
        with self._lock:
            return dict(self._status)

    def problems(self) -> list[str]:
        """One line per engine that is not ok: "llm restarting: llama.cpp exited (killed by signal 9)"."""
        return [f"{name} {s.state}: {s.reason}" for name, s in self.snapshot().items() if s.state != "ok"]
