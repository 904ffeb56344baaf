"""The caller side of a call: a real WebRTC client of the platform's `/call` endpoint.

Used by `conversimple-platform call`, the desktop app and the tests. Signalling is one JSON
WebSocket: the client sends a complete (non-trickle) offer, the platform answers and then streams
the conversation's events until `ended`. Audio goes both ways on one sendrecv audio track.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from platform_core.errors import StudioError
from platform_core.events import ErrorOccurred, Event, from_json
from platform_core.protocol import CALL_PATH, WS_MAX_SIZE
from platform_core.transport.wav_source import FRAME_SAMPLES, SAMPLE_RATE, SilenceSource

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 20.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CallError(StudioError, RuntimeError):
    """A call could not be placed or went wrong; `hint` says what to do."""


def call_ws_url(url: str) -> str:
    """`http://HOST:PORT[/]` (or ws://, https://, wss://) -> `ws(s)://HOST:PORT/call`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    schemes = {"http": "ws", "ws": "ws", "https": "wss", "wss": "wss"}
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{url!r} is not a platform URL; expected e.g. http://127.0.0.1:8765")
    path = parts.path.rstrip("/")
    if not path.endswith(CALL_PATH):
        path += CALL_PATH
    return urlunsplit((schemes[parts.scheme], parts.netloc, path, "", ""))


class CallClient:
    """One call to an agent through the platform.

    `on_agent_audio` receives the agent's audio as int16 mono 48 kHz 20 ms frames (960 samples);
    `on_event` receives each event of the conversation as a typed `platform_core.events` event
    (platform errors sent outside the event feed arrive as `ErrorOccurred(where="platform")`;
    events of kinds this version does not know are skipped).
    Callbacks run on the event loop and must be quick.
    """

    def __init__(
        self,
        url: str,
        *,
        agent_id: str | None = None,
        api_key: str | None = None,
        source: MediaStreamTrack | None = None,
        on_agent_audio: Callable[[np.ndarray], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        feed: str = "all",
    ) -> None:
        self.url = url
        self.ws_url = call_ws_url(url)
        self.agent_id = agent_id
        self._api_key = api_key
        self.source = source if source is not None else SilenceSource()
        self._on_agent_audio = on_agent_audio
        self._on_event = on_event
        self._feed = feed
        self.conversation_id: str | None = None
        self.worker: str | None = None  # the media worker serving the call, when a front door placed it
        self._ws: ClientConnection | None = None
        self._pc: RTCPeerConnection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._agent_frames: list[np.ndarray] = []
        self._ended: asyncio.Future[str] | None = None
        self._media_flowing = asyncio.Event()

    # --- public API -----------------------------------------------------------------------------

    async def connect(self) -> str:
        """Open signalling, negotiate WebRTC and start the event feed; returns the conversation id."""
        self._ended = asyncio.get_running_loop().create_future()
        self._ws = await self._open_ws()
        try:
            return await self._negotiate(self._ws)
        except BaseException:
            await self.close()
            raise

    async def wait_media(self, timeout: float = 10.0) -> None:
        """Wait for the agent's first audio frame (the platform sends silence between answers)."""
        try:
            async with asyncio.timeout(timeout):
                ended = asyncio.ensure_future(self.wait_ended())
                media = asyncio.ensure_future(self._media_flowing.wait())
                try:
                    await asyncio.wait({ended, media}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    ended.cancel()
                    media.cancel()
        except TimeoutError as exc:
            raise CallError(
                f"no audio from the platform {timeout:.0f} s after the answer: WebRTC media did not connect",
                "the peers found no common network path (ICE); run caller and platform on reachable hosts",
            ) from exc
        if not self._media_flowing.is_set():
            raise CallError(f"the call ended before audio flowed ({self.ended_reason})")

    async def send_text(self, text: str) -> None:
        """A typed turn, answered like a spoken one."""
        await self._send({"type": "text", "text": text})

    async def hangup(self, timeout: float = 5.0) -> str:
        """Ask the platform to end the call, wait for `ended` (up to `timeout`), release everything."""
        if self._ws is not None and not self.ended:
            with contextlib.suppress(ConnectionClosed, CallError):
                await self._send({"type": "hangup"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.wait_ended()), timeout)
        self._finish("hung up")
        await self.close()
        return self.ended_reason or "hung up"

    async def wait_ended(self) -> str:
        """Wait until the call is over (hang-up, platform end, lost connection); returns the reason."""
        if self._ended is None:
            raise RuntimeError("CallClient.connect() was not called")
        return await asyncio.shield(self._ended)

    @property
    def ended(self) -> bool:
        return self._ended is not None and self._ended.done()

    @property
    def ended_reason(self) -> str | None:
        return self._ended.result() if self._ended is not None and self._ended.done() else None

    def agent_audio(self) -> np.ndarray:
        """Everything the agent's track delivered so far (silence included): int16 mono 48 kHz."""
        if not self._agent_frames:
            return np.zeros(0, np.int16)
        return np.concatenate(self._agent_frames)

    async def close(self) -> None:
        """Release the peer connection, the socket and the tasks (idempotent)."""
        self._finish("closed")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pc is not None:
            await self._pc.close()
        if self._ws is not None:
            await self._ws.close()

    # --- signalling -----------------------------------------------------------------------------

    async def _open_ws(self) -> ClientConnection:
        host = urlsplit(self.ws_url).hostname or ""
        try:
            return await connect(
                self.ws_url,
                open_timeout=10,
                max_size=WS_MAX_SIZE,  # an event holds at most one agent frame (MAX_FRAME_BYTES)
                proxy=None if host in _LOOPBACK else True,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403, 429):  # the body says why (server/access.py)
                why = exc.response.body.decode(errors="replace").strip() if exc.response.body else ""
                raise CallError(
                    f"the platform at {self.url} refused the call (HTTP {status}{': ' + why if why else ''})",
                    "check the API key (--api-key) matches the one the platform was started with",
                ) from exc
            raise CallError(
                f"{self.url} did not accept a call (HTTP {status} on {self.ws_url})",
                "is this a Conversimple platform? Check --url (e.g. http://127.0.0.1:8765)",
            ) from exc
        except InvalidHandshake as exc:
            raise CallError(
                f"{self.url} does not speak the platform's WebSocket protocol ({exc})",
                "check --url points at `conversimple-platform serve`",
            ) from exc
        except TimeoutError as exc:
            raise CallError(
                f"the platform at {self.url} did not answer within 10 s",
                "is it running and reachable? Check --url and firewalls",
            ) from exc
        except OSError as exc:
            why = "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror or str(exc)
            raise CallError(
                f"cannot reach the platform at {self.url} ({why})",
                "start it with `conversimple-platform serve` or check --url",
            ) from exc

    async def _negotiate(self, ws: ClientConnection) -> str:
        self._pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(self.source)  # a sendrecv audio transceiver: our voice out, the agent's in

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(self._pump_agent_audio(track))

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc.connectionState == "failed":
                self._finish("media connection failed")

        await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers all candidates here
        await ws.send(
            json.dumps(
                {
                    "type": "offer",
                    "sdp": pc.localDescription.sdp,
                    "agent_id": self.agent_id,
                    "api_key": self._api_key,
                    "feed": self._feed,
                }
            )
        )
        answer = await self._wait_answer(ws)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.conversation_id = str(answer.get("conversation_id") or "")
        self.worker = str(answer["worker"]) if answer.get("worker") else None
        self._spawn(self._read_feed(ws))
        return self.conversation_id

    async def _wait_answer(self, ws: ClientConnection) -> dict[str, Any]:
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                while True:
                    msg = json.loads(await ws.recv())
                    if msg.get("type") == "answer":
                        return dict(msg)
                    if msg.get("type") == "error":
                        raise CallError(
                            f"the platform refused the call: {msg.get('message', 'no reason given')}",
                            str(msg.get("hint", "")),
                        )
                    if msg.get("type") == "ended":
                        raise CallError(f"the platform ended the call at once: {msg.get('reason', '')}")
                    if msg.get("type") == "event":
                        self._dispatch_json(msg.get("event") or {})
        except TimeoutError as exc:
            raise CallError(
                f"the platform at {self.url} sent no answer within {ANSWER_TIMEOUT_S:.0f} s",
                "it may be overloaded or still loading engines; try again",
            ) from exc
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else "no reason given"
            raise CallError(f"the platform closed the call before answering ({reason or 'no reason'})") from exc
        except (json.JSONDecodeError, AttributeError) as exc:
            raise CallError(f"the platform sent a malformed signalling message ({exc})") from exc

    async def _read_feed(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except json.JSONDecodeError:
                    log.warning("ignoring a malformed message from the platform: %.200r", raw)
                    continue
                kind = msg.get("type")
                if kind == "event":
                    self._dispatch_json(msg.get("event") or {})
                elif kind == "error":
                    self._dispatch(
                        ErrorOccurred(
                            where="platform",
                            message=str(msg.get("message", "")),
                            hint=str(msg.get("hint", "")),
                            conversation_id=self.conversation_id,
                        )
                    )
                elif kind == "ended":
                    self._finish(str(msg.get("reason") or "ended by the platform"))
                    return
        except ConnectionClosed:
            pass
        self._finish("signalling connection closed")

    async def _send(self, msg: dict[str, Any]) -> None:
        if self._ws is None:
            raise CallError("not connected", "call connect() first")
        if self.ended:
            raise CallError(f"the call is over ({self.ended_reason})")
        await self._ws.send(json.dumps(msg))

    def _dispatch_json(self, data: Any) -> None:
        event = from_json(data) if isinstance(data, dict) else None
        if event is None:
            log.debug("skipping an event this version cannot type: %.200r", data)
            return
        self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("on_event callback failed on %s", event.kind)

    # --- media ----------------------------------------------------------------------------------

    async def _pump_agent_audio(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        pending = np.zeros(0, np.int16)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            for out in resampler.resample(frame):
                pending = np.concatenate([pending, out.to_ndarray().reshape(-1)])
            while pending.size >= FRAME_SAMPLES:
                chunk, pending = pending[:FRAME_SAMPLES].copy(), pending[FRAME_SAMPLES:]
                self._agent_frames.append(chunk)
                self._media_flowing.set()
                if self._on_agent_audio is not None:
                    try:
                        self._on_agent_audio(chunk)
                    except Exception:
                        log.exception("on_agent_audio callback failed")

    # --- plumbing -------------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, reason: str) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(reason)
