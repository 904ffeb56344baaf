"""The one place where platform events become Qt signals.

The bus calls `_on_event` on the platform's loop thread (the Qt thread under qasync), but the
bridge is safe from any thread: events are emitted through a queued internal signal. AudioLevel
events (about 100 per second per call) are coalesced: buffered, then emitted as one list per
flush tick, so a level burst never floods the Qt event queue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from platform_core import EventBus
from platform_core.events import AudioLevel, Event


class EventBridge(QObject):
    event_received = Signal(object)  # every event except AudioLevel, in publication order
    levels = Signal(object)  # list[AudioLevel], coalesced
    _incoming = Signal(object)

    def __init__(self, flush_interval_ms: int = 15, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending_levels: list[AudioLevel] = []
        self._unsubscribe: Callable[[], None] | None = None
        # Queued even on the same thread: a bus publish never runs GUI code re-entrantly.
        self._incoming.connect(self.event_received.emit, Qt.ConnectionType.QueuedConnection)
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(flush_interval_ms)
        self._flush_timer.timeout.connect(self.flush_levels)
        self._flush_timer.start()
        self.levels_received = 0
        self.level_batches = 0

    def attach(self, bus: EventBus) -> None:
        """Start receiving `bus`'s events (replacing any earlier bus)."""
        self.detach()
        self._unsubscribe = bus.subscribe(self._on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, AudioLevel):
            with self._lock:
                self._pending_levels.append(event)
            return
        self._incoming.emit(event)

    def flush_levels(self) -> None:
        with self._lock:
            batch, self._pending_levels = self._pending_levels, []
        if batch:
            self.levels_received += len(batch)
            self.level_batches += 1
            self.levels.emit(batch)
