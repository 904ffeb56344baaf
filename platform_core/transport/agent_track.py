"""The agent's voice as an aiortc track: pulls paced 20 ms frames from a frame source.

The track knows nothing of segments or turns: whoever creates it hands it a callable that returns
the next 20 ms of 48 kHz mono PCM (silence when there is nothing to say), and it calls it once per
frame, in real time, like aiortc's own pulled tracks.
"""

from __future__ import annotations

from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from platform_core.audio import WEBRTC_RATE, Int16Array, pcm_to_frame
from platform_core.transport.pacing import FramePacer

FrameSource = Callable[[], Int16Array]
"""The next 20 ms (FRAME_SAMPLES at WEBRTC_RATE) of mono PCM to send."""


class AgentAudioTrack(MediaStreamTrack):
    """Outbound audio track: pulls one 20 ms frame from `source` per frame slot."""

    kind = "audio"

    def __init__(self, source: FrameSource) -> None:
        super().__init__()
        self._source = source
        self._pacer = FramePacer()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self._pacer.next_frame()
        if self.readyState != "live":  # stopped while waiting for the frame's slot: the call is over
            raise MediaStreamError
        return pcm_to_frame(self._source(), WEBRTC_RATE, pts)
