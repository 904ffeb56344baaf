"""Which media worker takes the next call (pure code, no I/O): the front door's choice from presence.

A worker's presence entry (cluster/presence.py) says its `active` calls and `capacity` (`max_calls`) as
of `written_at`, refreshed every second. The front door adds the calls it placed on a worker since that
entry was written (`Placements`), so calls placed within the same second spread over the workers
instead of all landing on the one that looked idlest. Workers are ranked by free capacity (capacity -
active), then fewest active, then id; a worker whose /call connection failed is skipped until it writes
its presence again (`Unreachable`): a dead worker's entry is never rewritten, and expires with its TTL.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from platform_core.cluster.presence import Member
from platform_core.server.host import CallRefused

KEEP_S = 30.0  # placements older than this no longer matter: every entry is rewritten each second


@dataclass(frozen=True)
class Candidate:
    """A worker that can take a call, with its load as the front door estimates it."""

    member: Member
    active: int

    @property
    def id(self) -> str:
        return self.member.id

    @property
    def free(self) -> int:
        return (self.member.capacity or 0) - self.active


class Placements:
    """The calls this front door placed, per worker, with when (wall clock, as presence entries are)."""

    def __init__(self) -> None:
        self._placed: dict[str, deque[float]] = {}
        self.total: dict[str, int] = {}  # calls placed on each worker since start (for /healthz)

    def add(self, worker_id: str, at: float | None = None) -> None:
        """A call placed on the worker."""
        self.reserve(worker_id, at)
        self.confirm(worker_id)

    def reserve(self, worker_id: str, at: float | None = None) -> float:
        """A call being set up on the worker: counted against it at once, so calls whose set-ups overlap
        (each takes 20-700 ms) are spread too; `confirm` or `release` it with the time returned."""
        at = time.time() if at is None else at
        times = self._placed.setdefault(worker_id, deque())
        times.append(at)
        while times and times[0] < at - KEEP_S:
            times.popleft()
        return at

    def confirm(self, worker_id: str) -> None:
        self.total[worker_id] = self.total.get(worker_id, 0) + 1

    def release(self, worker_id: str, at: float) -> None:
        """The worker did not take the call reserved at `at`."""
        times = self._placed.get(worker_id)
        if times is not None and at in times:
            times.remove(at)

    def since(self, worker_id: str, written_at: float) -> int:
        """Calls placed on the worker after its entry was written: not counted in it yet."""
        return sum(1 for at in self._placed.get(worker_id, ()) if at > written_at)


class Unreachable:
    """Workers whose /call connection failed, each skipped until its presence entry is written again."""

    def __init__(self) -> None:
        self._entry_at: dict[str, float] = {}  # worker id -> written_at of the entry seen when it failed
        self.why: dict[str, str] = {}

    def mark(self, member: Member, why: str) -> None:
        self._entry_at[member.id] = member.written_at
        self.why[member.id] = why

    def skips(self, member: Member) -> bool:
        seen = self._entry_at.get(member.id)
        if seen is None:
            return False
        if member.written_at > seen:  # it wrote again since: alive, try it again
            del self._entry_at[member.id]
            self.why.pop(member.id, None)
            return False
        return True


def workers_of(members: Iterable[Member]) -> list[Member]:
    return [m for m in members if m.role == "worker"]


def rank(workers: Iterable[Member], placements: Placements, unreachable: Unreachable) -> list[Candidate]:
    """The workers with free capacity, best first: most free, then fewest active, then id."""
    candidates = [
        Candidate(m, m.active + placements.since(m.id, m.written_at)) for m in workers if not unreachable.skips(m)
    ]
    free = [c for c in candidates if c.free > 0]
    return sorted(free, key=lambda c: (-c.free, c.active, c.id))


def no_worker_free(workers: list[Member], tried: dict[str, str]) -> CallRefused:
    """The caller's "busy", saying how many workers there are and why none took the call."""
    if not workers:
        return CallRefused(
            "busy: no media worker is registered on the broker (0 workers)",
            "start one (`conversimple-platform serve --role worker --broker URL`) and try again",
        )
    if not tried:
        return CallRefused(
            f"busy: no media worker has capacity ({len(workers)} workers, all full)",
            "try again when a call has ended (each worker takes max_calls calls; add workers or raise max_calls)",
        )
    reasons = "; ".join(f"{worker}: {why}" for worker, why in tried.items())
    return CallRefused(
        f"busy: no media worker took the call ({len(workers)} workers; {reasons})",
        "try again in a moment; `conversimple-platform cluster status` lists the workers and their load",
    )
