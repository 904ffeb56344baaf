"""The platform's side of one WebRTC call: answers the caller's offer, sends the agent's track and
hands the caller's track over. It knows nothing of conversations: the platform wires the callbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from platform_core.transport.offer import BadOffer, describe

log = logging.getLogger(__name__)


class CallPeer:
    def __init__(
        self,
        call_id: str,
        outbound: MediaStreamTrack,
        *,
        on_caller_track: Callable[[MediaStreamTrack], None],
        on_closed: Callable[[str], Awaitable[None]],
        connect_timeout_s: float = 10.0,
    ) -> None:
        """`outbound` is sent to the caller; `on_caller_track` gets the caller's audio track when it
        arrives; `on_closed(reason)` runs once when the call ends (before the connection closes).
        A call whose ICE and DTLS have not connected `connect_timeout_s` after the answer is closed."""
        self.call_id = call_id
        self.outbound = outbound
        self._on_closed = on_closed
        self._connect_timeout_s = connect_timeout_s
        self._connected = asyncio.Event()
        self._connect_watch: asyncio.Task[None] | None = None
        # No ICE servers: callers are local (same machine or LAN); a STUN lookup would only add delay.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._closed = asyncio.Event()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                on_caller_track(track)

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            state = self.pc.connectionState
            log.info("conversation %s: peer %s", call_id, state)
            if state == "connected":
                self._connected.set()
            if state in ("failed", "closed"):
                await self.close(f"WebRTC connection {state}")

    async def answer(self, offer_sdp: str) -> str:
        """Set the caller's offer (checked by `transport.offer.check_offer` first), attach the agent's
        voice, return the answer SDP (ICE gathered). Whatever aiortc raises on the way is BadOffer."""
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            self.pc.addTrack(self.outbound)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:  # aiortc's errors on bad input are of every type (see offer.py)
            raise BadOffer(f"the offer cannot be answered ({describe(exc)})") from exc
        self._connect_watch = asyncio.ensure_future(self._drop_unless_connected())
        return str(self.pc.localDescription.sdp)

    async def _drop_unless_connected(self) -> None:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._connected.wait()
        except TimeoutError:
            log.info("conversation %s: no media connection, dropped", self.call_id)
            await self.close(
                f"no media connection {self._connect_timeout_s:g} s after the answer (ICE/DTLS did not complete)"
            )

    @property
    def answer_sdp(self) -> str:
        """The answer `answer()` produced, for the caller."""
        return str(self.pc.localDescription.sdp)

    async def close(self, reason: str = "hung up") -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        watch = self._connect_watch
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        await self._on_closed(reason)
        await self.pc.close()
