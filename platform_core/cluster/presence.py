"""Presence: each cluster process keeps an entry in a JetStream key-value bucket that expires with it.

The bucket `<prefix>-presence` (in memory, one value per key) has a TTL: an entry not written again
within `ttl_s` is gone, so a process that dies without a word vanishes from it within the TTL. Each
process writes its `Member` (id, role, URL, load, conversations) every `every_s`, and deletes it when it
stops cleanly (gone at once). A process may also watch one role on each round: an entry of that role
seen before and gone now is reported (`on_gone`): a worker fails a gone gateway node's calls and frees
its conversations; a gateway node ends a gone worker's conversations (their agents are told).
The nats-server must run with JetStream (`-js`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from platform_core.cluster import messages
from platform_core.cluster.messages import Message
from platform_core.cluster.subjects import Subjects

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

TTL_S = 3.0
EVERY_S = 1.0


def bucket_name(subjects: Subjects) -> str:
    return subjects.prefix.replace(".", "_") + "-presence"  # a bucket name has no dots


@dataclass(frozen=True)
class Member(Message):
    """One process of the cluster as it last wrote itself."""

    FIELDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "id": (str,),
        "role": (str,),
        "url": (str,),
        "active": (int,),
        "capacity": (int, type(None)),
        "conversations": (list,),
        "agents": (int,),
        "pid": (int,),
        "written_at": (int, float),
    }
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"capacity", "conversations", "agents", "pid", "written_at"})
    id: str
    role: str  # "worker", "gateway" or "front"
    url: str  # a worker's or front door's platform URL; a node's agent websocket URL
    active: int  # conversations now
    capacity: int | None = None  # a worker's max_calls
    conversations: list[str] = field(default_factory=list)
    agents: int = 0  # a node's connected agents
    pid: int = field(default_factory=os.getpid)
    written_at: float = field(default_factory=time.time)


async def open_bucket(broker: Client, subjects: Subjects, ttl_s: float = TTL_S) -> KeyValue:
    """The presence bucket, created on first use; BrokerError-worthy problems surface as nats errors."""
    from nats.js import api
    from nats.js import errors as js_errors

    js = broker.jetstream()
    name = bucket_name(subjects)
    try:
        return await js.key_value(name)
    except js_errors.BucketNotFoundError:
        pass
    config = api.KeyValueConfig(bucket=name, ttl=ttl_s, history=1, storage=api.StorageType.MEMORY)
    try:
        return await js.create_key_value(config)
    except js_errors.Error:  # another process created it meanwhile
        return await js.key_value(name)


async def read_members(bucket: KeyValue) -> list[Member]:
    """Every live entry (a malformed one is logged and skipped)."""
    from nats.js import errors as js_errors

    found: list[Member] = []
    for key in await _keys(bucket):
        try:
            entry = await bucket.get(key)
            if entry.value:
                found.append(Member.from_bytes(entry.value))
        except (js_errors.KeyNotFoundError, js_errors.KeyDeletedError):
            continue  # expired or deleted between the listing and the read
        except messages.MessageError as exc:
            log.warning("presence entry %s is malformed: %s", key, exc)
    return found


async def _keys(bucket: KeyValue) -> list[str]:
    """The bucket's keys, from the stream's own per-subject count. Not `KeyValue.keys()`: its watcher can
    report "no keys" before it has delivered an entry just written (seen in CI: an entry put and acked,
    then `keys()` empty). The attributes read are nats-py 2.16.0's (pinned in pyproject.toml)."""
    prefix = f"$KV.{bucket._name}."
    info = await bucket._js.stream_info(bucket._stream, subjects_filter=f"{prefix}>")
    return sorted(subject[len(prefix) :] for subject in (info.state.subjects or {}))


class Presence:
    """Writes `member()` every `every_s`; with `watch` and `on_gone`, reports that role's entries seen and
    then gone (with their last entry)."""

    def __init__(
        self,
        broker: Client,
        subjects: Subjects,
        member: Callable[[], Member],
        *,
        ttl_s: float = TTL_S,
        every_s: float = EVERY_S,
        watch: str = "",
        on_gone: Callable[[Member, str], None] | None = None,
    ) -> None:
        self._nc = broker
        self._subjects = subjects
        self._member = member
        self._ttl_s = ttl_s
        self._every_s = every_s
        self._watch = watch
        self._on_gone = on_gone
        self._bucket: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, Member] = {}  # the watched role's entries in the last round
        self.members: list[Member] = []  # as last read

    async def start(self) -> None:
        self._bucket = await open_bucket(self._nc, self._subjects, self._ttl_s)
        await self._round()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop writing and delete the entry: the others see this process gone at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._bucket is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):  # stopping: the TTL removes it anyway
                await self._bucket.delete(self._member().id)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self._round()
            except Exception as exc:  # the broker reconnecting, or restarted without the bucket: open it again
                log.debug("presence round failed: %s: %s", type(exc).__name__, exc)
                self._bucket = None

    async def _round(self) -> None:
        if not self._nc.is_connected:
            return
        if self._bucket is None:
            self._bucket = await open_bucket(self._nc, self._subjects, self._ttl_s)
        member = self._member()
        await self._bucket.put(member.id, member.to_bytes())
        if self._on_gone is None or not self._watch:
            return
        self.members = await read_members(self._bucket)
        seen = {m.id: m for m in self.members if m.role == self._watch}
        for gone in sorted(self._seen.keys() - seen.keys()):
            why = f"its presence entry is gone: no refresh for {self._ttl_s:g} s, or it stopped"
            self._on_gone(self._seen[gone], why)
        self._seen = seen


def describe(members: list[Member]) -> list[dict[str, Any]]:
    """The entries as `cluster status` prints them, gateway nodes first."""
    now = time.time()
    rows = sorted(members, key=lambda m: (m.role != "gateway", m.id))
    return [{**m.to_json(), "age_s": round(max(0.0, now - m.written_at), 1)} for m in rows]
