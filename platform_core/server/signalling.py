"""WebSocket /call: WebRTC signalling for one caller, then that conversation's live event feed.

client -> server: {"type": "offer", "sdp", "agent_id"?, "api_key"?, "feed": "all" | "no-levels"},
                  later {"type": "text", "text"} and {"type": "hangup"}
server -> client: {"type": "answer", "sdp", "conversation_id"}, {"type": "event", "event": {...}},
                  {"type": "error", "message", "hint"}, {"type": "ended", "reason"}
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from platform_core.events import AudioLevel, ConversationStateChanged, Event
from platform_core.server.host import CallHandle, CallRefused, ServerHost

log = logging.getLogger(__name__)

OFFER_TIMEOUT_S = 15.0


async def _send(connection: ServerConnection, message: dict[str, Any]) -> None:
    await connection.send(json.dumps(message, default=str))


async def _read_offer(connection: ServerConnection) -> dict[str, Any]:
    try:
        raw = await asyncio.wait_for(connection.recv(), OFFER_TIMEOUT_S)
    except TimeoutError as exc:
        raise CallRefused(
            f"no offer within {OFFER_TIMEOUT_S:.0f} s", 'send {"type": "offer", "sdp": ...} first'
        ) from exc
    try:
        message = json.loads(raw)
    except ValueError as exc:
        raise CallRefused("the first message is not JSON", "send a JSON offer message") from exc
    if not isinstance(message, dict) or message.get("type") != "offer" or not isinstance(message.get("sdp"), str):
        raise CallRefused(
            "the first message must be an offer with an SDP",
            'send {"type": "offer", "sdp": "<SDP>", "agent_id": "<id>"}',
        )
    return message


async def handle_call(connection: ServerConnection, host: ServerHost) -> None:
    try:
        offer = await _read_offer(connection)
        peer = await host.open_call(
            offer["sdp"], agent_id=offer.get("agent_id") or None, api_key=offer.get("api_key") or None
        )
    except CallRefused as refusal:
        await _send(connection, {"type": "error", "message": refusal.message, "hint": refusal.hint})
        return
    except ConnectionClosed:
        return
    conversation = peer.conversation
    levels = offer.get("feed", "all") != "no-levels"
    feed: asyncio.Queue[Event] = asyncio.Queue()

    def forward(event: Event) -> None:
        if getattr(event, "conversation_id", None) != conversation.conversation_id:
            return
        if isinstance(event, AudioLevel) and not levels:
            return
        feed.put_nowait(event)

    unsubscribe = host.bus.subscribe(forward)
    sender = asyncio.ensure_future(_pump_events(connection, feed))
    try:
        await _send(
            connection, {"type": "answer", "sdp": peer.answer_sdp, "conversation_id": conversation.conversation_id}
        )
        await _receive_commands(connection, peer)
    except ConnectionClosed:
        pass
    finally:
        await peer.close("caller hung up")
        await asyncio.sleep(0)  # let the final events reach the feed
        unsubscribe()
        feed.put_nowait(ConversationStateChanged(conversation_id="", agent_id=None, state="ended"))
        try:
            await asyncio.wait_for(sender, 5)
        except (TimeoutError, ConnectionClosed):
            sender.cancel()


async def _receive_commands(connection: ServerConnection, peer: CallHandle) -> None:
    conversation = peer.conversation
    ended = asyncio.ensure_future(conversation.wait_ended())
    try:
        while True:
            receive = asyncio.ensure_future(connection.recv())
            done, _ = await asyncio.wait({receive, ended}, return_when=asyncio.FIRST_COMPLETED)
            if ended in done:
                receive.cancel()
                return
            try:
                message = json.loads(receive.result())
            except ValueError:
                await _send(
                    connection,
                    {
                        "type": "error",
                        "message": "message is not JSON",
                        "hint": 'send {"type": "text", "text": ...} or {"type": "hangup"}',
                    },
                )
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "hangup":
                return
            if kind == "text" and isinstance(message.get("text"), str) and message["text"].strip():
                conversation.submit_text(message["text"])
            else:
                await _send(
                    connection,
                    {
                        "type": "error",
                        "message": f"unknown command {kind!r}",
                        "hint": 'commands: {"type": "text", "text": ...}, {"type": "hangup"}',
                    },
                )
    finally:
        ended.cancel()


async def _pump_events(connection: ServerConnection, feed: asyncio.Queue[Event]) -> None:
    """Forward the conversation's events until the sentinel (an 'ended' state with no conversation id)."""
    reason = "hung up"
    while True:
        event = await feed.get()
        if isinstance(event, ConversationStateChanged) and not event.conversation_id:
            break
        if isinstance(event, ConversationStateChanged) and event.state == "ended":
            reason = event.reason or reason
        await _send(connection, {"type": "event", "event": event.to_json()})
    await _send(connection, {"type": "ended", "reason": reason})
