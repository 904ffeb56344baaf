"""Helpers for end-to-end call tests: a real platform process, speech WAVs, headless Chromium.

Set CONVERSIMPLE_TEST_PLATFORM_URL=http://HOST:PORT to run the tests against a platform that is
already running (then no process is started here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_LISTENING = re.compile(r"listening on (http://\S+)")


# --- the platform ---------------------------------------------------------------------------------


# --- test audio -----------------------------------------------------------------------------------


def speak(text: str, path: Path, *, pad_before: float = 0.3, pad_after: float = 0.0) -> Path:
    """`text` in the project's Piper voice at its own rate (22.05 kHz mono), padded with silence."""
    from tests.speech import speech_file

    return speech_file(path, text, 22_050, lead_s=pad_before, tail_s=pad_after)


def sox(
    src: Path, dst: Path, *effects: str, rate: int | None = None, channels: int | None = None, bits: int | None = None
) -> Path:
    """Convert with sox: output rate/channels/bit depth, then effects."""
    out_opts: list[str] = []
    if rate:
        out_opts += ["-r", str(rate)]
    if channels:
        out_opts += ["-c", str(channels)]
    if bits:
        out_opts += ["-b", str(bits)]
    subprocess.run(["sox", "-V1", str(src), *out_opts, str(dst), *effects], check=True, capture_output=True)
    return dst


# --- headless Chromium over the DevTools protocol ---------------------------------------------------


class Chromium:
    """Debian's chromium, headless, with a fake microphone that plays a WAV file once."""

    def __init__(self, url: str, mic_wav: Path, profile: Path) -> None:
        self.url, self.mic_wav, self.profile = url, mic_wav, profile
        self.proc: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._ws: Any = None

    async def __aenter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.to_thread(
            subprocess.Popen,
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                # %noloop: play the file once, then silence (a caller who said one thing)
                f"--use-file-for-fake-audio-capture={self.mic_wav}%noloop",
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--autoplay-policy=no-user-gesture-required",
                self.url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        async with asyncio.timeout(30):
            while not port_file.exists() or not port_file.read_text().strip():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"chromium exited at start (code {self.proc.returncode})")
                await asyncio.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            async with httpx.AsyncClient() as http:
                while True:
                    targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                    pages = [t for t in targets if t.get("type") == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.1)
        self._ws = await connect(pages[0]["webSocketDebuggerUrl"], max_size=2**24, proxy=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools protocol command to the page; returns its result."""
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited); returns the JSON value."""
        msg_id = next(self._ids)
        await self._ws.send(
            json.dumps(
                {
                    "id": msg_id,
                    "method": "Runtime.evaluate",
                    "params": {"expression": expression, "awaitPromise": True, "returnByValue": True},
                }
            )
        )
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") != msg_id:
                continue
            result = reply.get("result", {})
            if "exceptionDetails" in result:
                raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
            return result.get("result", {}).get("value")

    async def screenshot(self, path: Path, width: int = 1400) -> Path:
        """The whole page, `width` CSS pixels wide, as a PNG."""
        await self.command(
            "Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False
        )
        height = int(await self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": width, "height": max(height, 200), "scale": 1}
        shot = await self.command("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    async def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll a JavaScript expression until it is truthy."""
        async with asyncio.timeout(timeout):
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110 (state in the page)
                await asyncio.sleep(0.25)
            return value


@contextlib.asynccontextmanager
async def chromium(url: str, mic_wav: Path, profile: Path) -> AsyncIterator[Chromium]:
    async with Chromium(url, mic_wav, profile) as browser:
        yield browser
