"""WebSocket /call: WebRTC signalling for one caller, then that conversation's live event feed.

client -> server: {"type": "offer", "sdp", "agent_id"?, "api_key", "feed": "all" | "no-levels"},
                  later {"type": "text", "text"} and {"type": "hangup"}
                  (api_key: an API key, or the token in the platform's page; required)
server -> client: {"type": "answer", "sdp", "conversation_id"} (through a cluster's front door also
                  "worker" and "worker_url": the media worker serving the call), {"type": "event", "event": {...}},
                  {"type": "error", "message", "hint"}, {"type": "ended", "reason", "dropped_events"}

Every message is checked at the edge (server/messages.py): a bad offer is answered with one error and
nothing is left behind; a bad command gets an error and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from platform_core.config import ServerConfig
from platform_core.events import AudioLevel, ConversationStateChanged, Event
from platform_core.protocol import CALL_PATH
from platform_core.server.access import AccessGuard, remote_ip
from platform_core.server.host import CallHandle, CallRefused, ServerHost, Unauthorized
from platform_core.server.messages import BadMessage, MessageLimits, Offer, TurnRate, parse_command, parse_offer

log = logging.getLogger(__name__)

OFFER_TIMEOUT_S = 15.0
_END = ConversationStateChanged(conversation_id="", agent_id=None, state="ended")  # the feed's last item

T = TypeVar("T")


async def _send(connection: ServerConnection, message: dict[str, Any]) -> None:
    await connection.send(json.dumps(message, default=str))


async def send_error(connection: ServerConnection, message: str, hint: str) -> None:
    await _send(connection, {"type": "error", "message": message, "hint": hint})


class CallFeed:
    """One caller's queue of events, bounded like the bus's streams: when the caller reads too slowly
    the oldest events are dropped and counted (the count is sent with `ended`)."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max(1, maxsize))
        self.dropped = 0

    def put(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1:
                log.warning("a /call feed is full: the caller reads too slowly, dropping the oldest events")
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()


async def read_offer(connection: ServerConnection, limits: MessageLimits) -> Offer:
    """The caller's first message, checked at the edge; CallRefused (message and hint) if it is none."""
    try:
        raw = await asyncio.wait_for(connection.recv(), OFFER_TIMEOUT_S)
    except TimeoutError as exc:
        raise CallRefused(
            f"no offer within {OFFER_TIMEOUT_S:.0f} s", 'send {"type": "offer", "sdp": ...} first'
        ) from exc
    try:
        return parse_offer(raw, limits)
    except BadMessage as exc:
        raise CallRefused(exc.message, exc.hint) from exc


def message_limits(config: ServerConfig) -> MessageLimits:
    return MessageLimits(max_bytes=config.max_message_bytes, max_depth=config.max_json_depth)


async def open_or_refuse(
    connection: ServerConnection,
    config: ServerConfig,
    access: AccessGuard,
    opener: Callable[[Offer], Awaitable[T]],
    *,
    failure: str,
    hint: str,
) -> tuple[Offer, T] | None:
    """Read the caller's offer and `opener(offer)`; on a refusal or a bug the caller is told why (a wrong
    key counts against its address) and None is returned. `failure`/`hint`: what a bug tells the caller."""
    try:
        offer = await read_offer(connection, message_limits(config))
        return offer, await opener(offer)
    except CallRefused as refusal:
        if isinstance(refusal, Unauthorized):
            access.failed(remote_ip(connection.remote_address), CALL_PATH, refusal.message)
        with contextlib.suppress(ConnectionClosed):
            await send_error(connection, refusal.message, refusal.hint)
    except ConnectionClosed:
        pass
    except Exception:  # a bug, not bad input: the caller still gets an answer, the log the traceback
        log.exception("%s", failure)
        with contextlib.suppress(ConnectionClosed):
            await send_error(connection, failure, hint)
    return None


async def handle_call(connection: ServerConnection, host: ServerHost) -> None:
    config = host.server_config

    async def open_call(offer: Offer) -> CallHandle:
        return await host.open_call(offer.sdp, agent_id=offer.agent_id, api_key=offer.api_key)

    opened = await open_or_refuse(
        connection,
        config,
        host.access,
        open_call,
        failure="the platform failed to open the call",
        hint="see the platform's log",
    )
    if opened is not None:
        await _serve_call(connection, host, opened[1], opened[0], config)


async def _serve_call(
    connection: ServerConnection, host: ServerHost, peer: CallHandle, offer: Offer, config: ServerConfig
) -> None:
    conversation = peer.conversation
    levels = offer.feed != "no-levels"
    feed = CallFeed(config.call_feed_events)

    def forward(event: Event) -> None:
        if getattr(event, "conversation_id", None) != conversation.conversation_id:
            return
        if isinstance(event, AudioLevel) and not levels:
            return
        feed.put(event)

    unsubscribe = host.bus.subscribe(forward)
    sender = asyncio.ensure_future(_pump_events(connection, feed))
    try:
        await _send(
            connection, {"type": "answer", "sdp": peer.answer_sdp, "conversation_id": conversation.conversation_id}
        )
        await _receive_commands(connection, peer, config)
    except ConnectionClosed:
        pass
    finally:
        await peer.close("caller hung up")
        await asyncio.sleep(0)  # let the final events reach the feed
        unsubscribe()
        feed.put(_END)
        try:
            await asyncio.wait_for(sender, 5)
        except (TimeoutError, ConnectionClosed):
            sender.cancel()


async def _receive_commands(connection: ServerConnection, peer: CallHandle, config: ServerConfig) -> None:
    conversation = peer.conversation
    limits = message_limits(config)
    rate = TurnRate(config.max_text_turns_per_s)
    ended = asyncio.ensure_future(conversation.wait_ended())
    try:
        while True:
            receive = asyncio.ensure_future(connection.recv())
            done, _ = await asyncio.wait({receive, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended in done:
                receive.cancel()
                return
            try:
                command = parse_command(receive.result(), limits)
            except BadMessage as exc:
                await send_error(connection, exc.message, exc.hint)
                continue
            if command.kind == "hangup":
                return
            if rate.allow():
                conversation.submit_text(command.text)
            else:
                await send_error(
                    connection,
                    f"too many text turns: at most {rate.per_second} a second; this one was not sent",
                    "wait for the agent's answer before typing the next turn",
                )
    finally:
        ended.cancel()


async def _pump_events(connection: ServerConnection, feed: CallFeed) -> None:
    """Forward the conversation's events until the sentinel (an 'ended' state with no conversation id)."""
    reason = "hung up"
    while True:
        event = await feed.get()
        if event is _END:
            break
        if isinstance(event, ConversationStateChanged) and event.state == "ended":
            reason = event.reason or reason
        await _send(connection, {"type": "event", "event": event.to_json()})
    await _send(connection, {"type": "ended", "reason": reason, "dropped_events": feed.dropped})
