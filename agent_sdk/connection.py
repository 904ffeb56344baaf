"""The agent's websocket to the platform: join, heartbeat, reconnect with backoff.

A refused API key is permanent (AuthenticationError, no retry); anything else is retried with
exponential backoff and jitter. Given several URLs (e.g. gateway nodes of a cluster), each failed attempt
or dropped session moves to the next one, round robin, so a dead node costs one backoff delay. After
every (re)join `on_connected` runs, so the runtime can register its tools again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from agent_sdk.wire import AuthenticationError, Channel, ServerMessage, connect_url, join_result, parse, platform_urls
from platform_core.protocol import SUBPROTOCOL, WS_MAX_SIZE

log = logging.getLogger(__name__)

PERMANENT = ("unauthorized", "invalid_api_key", "missing_credentials", "forbidden")


class Connection:
    def __init__(
        self,
        url: str | Sequence[str],
        api_key: str,
        customer_id: str,
        on_message: Callable[[ServerMessage], Awaitable[None]],
        on_connected: Callable[[], Awaitable[None]],
        *,
        heartbeat_interval: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_factor: float = 2.0,
        backoff_max: float = 30.0,
        max_reconnect_attempts: int | None = None,
        total_retry_duration: float | None = None,
        retry_refused_key: bool = False,
    ) -> None:
        self.urls = platform_urls(url)  # without credentials: these may be logged
        self._index = 0
        self._api_key = api_key
        self._customer_id = customer_id
        self.channel = Channel(customer_id)
        self._on_message = on_message
        self._on_connected = on_connected
        self.heartbeat_interval = heartbeat_interval
        self.backoff_initial = backoff_initial
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.max_reconnect_attempts = max_reconnect_attempts
        self.total_retry_duration = total_retry_duration
        self.retry_refused_key = retry_refused_key  # conversimple's enable_circuit_breaker=False
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_join: asyncio.Future[None] | None = None
        self._stopping = False
        self.failure: BaseException | None = None  # why the connection gave up, if it did

    @property
    def base_url(self) -> str:
        """The endpoint the current (or next) attempt uses."""
        return self.urls[self._index]

    @property
    def url(self) -> str:
        """`base_url` with the customer and key in its query, as the platform expects them."""
        return connect_url(self.base_url, self._api_key, self._customer_id)

    def _rotate(self) -> None:
        self._index = (self._index + 1) % len(self.urls)

    @property
    def connected(self) -> bool:
        return self._ws is not None

    async def start(self) -> None:
        """Connect and join; returns once joined. Raises AuthenticationError for a refused key."""
        self._first_join = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run())
        await asyncio.shield(self._first_join)

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, event: str, payload: dict[str, object]) -> bool:
        """Send one event; False if not connected (the platform has already failed what it waited for)."""
        ws = self._ws
        if ws is None:
            log.debug("not connected; %s dropped", event)
            return False
        try:
            await ws.send(self.channel.push(event, payload))
            return True
        except ConnectionClosed:
            return False

    async def _run(self) -> None:
        attempt = 0
        retrying_since: float | None = None
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                await self._session()
                attempt, retrying_since = 0, None
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, ConnectionError) as exc:
                refused = self._refusal(exc)
                if refused is not None and not self.retry_refused_key:
                    self._give_up(refused)
                    return
                if not self._stopping:
                    log.warning("connection to the platform at %s failed: %s", self.base_url, exc)
            if self._stopping:
                return
            self._rotate()
            attempt += 1
            retrying_since = retrying_since or loop.time()
            out_of_attempts = self.max_reconnect_attempts is not None and attempt > self.max_reconnect_attempts
            out_of_time = self.total_retry_duration is not None and (
                loop.time() - retrying_since > self.total_retry_duration
            )
            if out_of_attempts or out_of_time:
                self._give_up(ConnectionError(f"gave up after {attempt - 1} reconnection attempts"))
                return
            delay = min(self.backoff_max, self.backoff_initial * self.backoff_factor ** (attempt - 1))
            delay *= random.uniform(0.8, 1.2)  # jitter: agents of a restarted platform do not stampede
            log.info("reconnecting in %.1f s (attempt %d)", delay, attempt)
            await asyncio.sleep(delay)

    @staticmethod
    def _refusal(exc: Exception) -> AuthenticationError | None:
        """The permanent kind of failure: the platform refused the key (at join or at the handshake)."""
        if isinstance(exc, AuthenticationError):
            return exc
        if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
            body = exc.response.body.decode(errors="replace").strip()
            return AuthenticationError(body or f"HTTP {exc.response.status_code}")
        return None

    async def _session(self) -> None:
        async with connect(
            self.url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            max_size=WS_MAX_SIZE,
            compression=None,
            open_timeout=10,
        ) as ws:
            await ws.send(self.channel.join())
            problem = join_result(parse(await asyncio.wait_for(ws.recv(), 10)))
            if problem is not None:
                if any(p in problem.lower() for p in PERMANENT):
                    raise AuthenticationError(problem)
                raise ConnectionError(f"channel join refused: {problem}")
            log.info("connected to the platform at %s", self.base_url)
            self._ws = ws
            heartbeat = asyncio.create_task(self._heartbeat())
            try:
                if self._first_join is not None and not self._first_join.done():
                    self._first_join.set_result(None)
                await self._on_connected()
                async for data in ws:
                    message = parse(data)
                    if message is not None:
                        await self._on_message(message)
            finally:
                self._ws = None
                heartbeat.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.send("heartbeat", {})

    def _give_up(self, exc: BaseException) -> None:
        log.error("not connecting to the platform: %s", exc)
        self.failure = exc
        if self._first_join is not None and not self._first_join.done():
            self._first_join.set_exception(exc)
