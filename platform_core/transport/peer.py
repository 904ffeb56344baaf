"""The platform's side of one WebRTC call: answers the caller's offer, sends the agent's track and
hands the caller's track over. It knows nothing of conversations: the platform wires the callbacks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, sdp
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger(__name__)


class CallPeer:
    def __init__(
        self,
        call_id: str,
        outbound: MediaStreamTrack,
        *,
        on_caller_track: Callable[[MediaStreamTrack], None],
        on_closed: Callable[[str], Awaitable[None]],
    ) -> None:
        """`outbound` is sent to the caller; `on_caller_track` gets the caller's audio track when it
        arrives; `on_closed(reason)` runs once when the call ends (before the connection closes)."""
        self.call_id = call_id
        self.outbound = outbound
        self._on_closed = on_closed
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
            if state in ("failed", "closed"):
                await self.close(f"WebRTC connection {state}")

    async def answer(self, offer_sdp: str) -> str:
        """Set the caller's offer, attach the agent's voice, return the answer SDP (ICE gathered)."""
        audio = [m for m in sdp.SessionDescription.parse(offer_sdp).media if m.kind == "audio"]
        if not audio:
            raise ValueError("the offer has no audio section: the caller must offer an audio track")
        if audio[0].direction not in (None, "sendrecv", "sendonly"):
            raise ValueError(
                f"the offer's audio is {audio[0].direction}: the caller must send a microphone track (sendrecv)"
            )
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        self.pc.addTrack(self.outbound)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    @property
    def answer_sdp(self) -> str:
        """The answer `answer()` produced, for the caller."""
        return str(self.pc.localDescription.sdp)

    async def close(self, reason: str = "hung up") -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        await self._on_closed(reason)
        await self.pc.close()
