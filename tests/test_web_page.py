"""The platform's web page: headless Chromium calls an agent with a fake microphone (a WAV file)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.platform_helpers import chromium, speak

pytestmark = pytest.mark.slow

_LOADED = "document.readyState === 'complete' && !!window.conversimple"
_ANSWERED = """(() => { const s = window.conversimple;
  return s.finals.length > 0 && Object.values(s.turns).some((t) => t.completed && t.agent)
         && s.agentAudio.maxLevel > 0.02; })()"""


def test_page_is_served(platform_url: str) -> None:
    page = httpx.get(platform_url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "RTCPeerConnection" in page.text and "/call" in page.text
    assert "{{PAGE_TOKEN}}" not in page.text and 'name="conversimple-token" content="page.' in page.text
    assert page.headers["x-frame-options"] == "DENY"  # no other site may frame the page and its token


async def test_browser_calls_and_hears_a_spoken_answer(platform_url: str, tmp_path: Path) -> None:
    # Chromium's fake microphone starts with getUserMedia, before WebRTC connects: lead in with silence.
    mic = speak("What is the weather like in Paris today?", tmp_path / "mic.wav", pad_before=1.5, pad_after=3)
    # No key typed in: the page places the call with the token the platform put into it.
    async with chromium(f"{platform_url}/", mic, tmp_path / "profile") as page:
        await page.wait_for(_LOADED, 20)
        await page.evaluate("window.conversimple.call()")
        try:
            await page.wait_for(_ANSWERED, 90)
        except TimeoutError:
            state = await page.evaluate("window.conversimple.snapshot()")
            pytest.fail(f"no spoken answer in the page: {json.dumps(state)[:2000]}")
        state = await page.evaluate("window.conversimple.snapshot()")
        assert state["errors"] == []
        assert any("weather" in f.lower() or "paris" in f.lower() for f in state["finals"])
        assert state["agentAudio"]["packets"] > 50
        shown = await page.evaluate("document.getElementById('turns').textContent")
        assert state["finals"][0] in shown  # the transcript is on screen, not only in the state
        await page.evaluate("window.conversimple.hangup()")
        await page.wait_for("window.conversimple.status === 'ended'", 10)
        assert "ended" in (await page.evaluate("document.getElementById('status').textContent")).lower()


async def test_page_shows_a_clear_error_for_a_wrong_api_key(platform_url: str, tmp_path: Path) -> None:
    mic = speak("Hello.", tmp_path / "mic.wav")
    async with chromium(f"{platform_url}/?api_key=wrong-key", mic, tmp_path / "profile") as page:
        await page.wait_for(_LOADED, 20)
        await page.evaluate("window.conversimple.call()")
        await page.wait_for("window.conversimple.errors.length > 0", 20)
        shown = await page.evaluate("document.getElementById('error').textContent")
        assert "API key" in shown
