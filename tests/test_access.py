"""Who gets in (issue 14): keys on /call, the page's token, Host and Origin checks on every request, the
throttle on failed keys, weak keys refused off loopback. The real platform (the session's, key
API_KEY) over real websockets and HTTP; a real headless Chromium for the cross-origin page.

Attempts that fail to authenticate come from their own loopback source address (127.0.0.x), so the
throttle they trip never locks out the other tests, which call from 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus

from bench.harness import API_KEY, REPO, RunningPlatform
from platform_core.config import saved_api_key
from platform_core.protocol import CALL_PATH, GATEWAY_PATH
from platform_core.server.access import AccessGuard, FailureThrottle, PageTokens
from platform_core.transport.client import CallClient, CallError
from tests.platform_helpers import chromium, speak

TIMEOUT = 10


def ws_url(platform_url: str, path: str) -> str:
    return platform_url.replace("http://", "ws://", 1) + path


async def offer(platform_url: str, api_key: Any, source: str, **options: Any) -> dict[str, Any]:
    """Open /call from `source`, send an offer with `api_key`, return the platform's first reply.
    (The SDP is never read: the key is checked first.)"""
    async with connect(ws_url(platform_url, CALL_PATH), local_addr=(source, 0), open_timeout=TIMEOUT, **options) as ws:
        await ws.send(json.dumps({"type": "offer", "sdp": "v=0\r\n", "api_key": api_key}))
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        return reply


async def refused_status(url: str, source: str, **options: Any) -> tuple[int, str]:
    """The HTTP status and body that refuse a websocket handshake (fails if it is accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, local_addr=(source, 0), open_timeout=TIMEOUT, **options):
            pass
    response = refused.value.response
    return response.status_code, response.body.decode()


def get(url: str, source: str = "127.0.0.1", **headers: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=TIMEOUT) as http:
        return http.get(url, headers=headers)


async def logged(platform: RunningPlatform, since: int, line: str, timeout: float = 5.0) -> str:
    """The platform's log from byte `since` on, once it holds `line` (fails if it never does)."""
    deadline = time.monotonic() + timeout
    while True:
        with platform.log_path.open() as log:
            log.seek(since)
            text = log.read()
        if line in text or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # the harness copies the platform's output to the file as it comes
    assert line in text, f"not in the platform's log: {line!r}\n{text}"
    return text


def page_token(platform_url: str) -> str:
    match = re.search(r'name="conversimple-token" content="([^"]+)"', get(platform_url + "/").text)
    assert match, "the page carries no token"
    return match.group(1)


# --- keys and tokens on /call ------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_call_without_a_key_is_refused(platform_url: str) -> None:
    with pytest.raises(CallError, match="no API key") as refused:
        await CallClient(platform_url).connect()
    assert "api_key" in refused.value.hint
    reply = await offer(platform_url, "", "127.0.0.2")
    assert reply["type"] == "error" and reply["message"] == "unauthorized: the call has no API key"


@pytest.mark.slow
async def test_a_wrong_or_malformed_key_is_refused(platform_server: RunningPlatform) -> None:
    platform_url = platform_server.url
    since = platform_server.log_path.stat().st_size
    reply = await offer(platform_url, "not-the-key", "127.0.0.3")
    assert reply == {"type": "error", "message": "unauthorized: invalid API key", "hint": reply["hint"]}
    assert "API key" in reply["hint"]
    # The failure is logged with the address it came from and where, and never with the key it tried.
    text = await logged(
        platform_server, since, f"authentication failed from 127.0.0.3 on {CALL_PATH}: unauthorized: invalid API key"
    )
    assert "not-the-key" not in text
    # A key that is not a string is refused at the edge, before any key is compared.
    for key, kind in ((["a", "list"], "an array"), ({"an": "object"}, "an object")):
        reply = await offer(platform_url, key, "127.0.0.3")
        assert reply["type"] == "error" and reply["message"] == f'"api_key" must be a string, not {kind}', reply


@pytest.mark.slow
async def test_the_pages_token_places_a_call_and_a_forged_one_does_not(platform_url: str) -> None:
    client = CallClient(platform_url, api_key=page_token(platform_url))
    conversation_id = await client.connect()
    assert conversation_id.startswith("conv_")
    await client.hangup()
    forged = f"page.{int(time.time()) + 600}.{'0' * 64}"
    reply = await offer(platform_url, forged, "127.0.0.4")
    assert reply["message"] == "unauthorized: the page token is not one this platform issued"
    assert "reload" in reply["hint"]


@pytest.mark.slow
def test_an_expired_page_token_is_refused(tmp_path: Path) -> None:
    """A platform of its own whose page tokens last 1 s (server.page_token_ttl_s in its settings)."""
    settings = tmp_path / "conversimple-studio" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"server": {"api_key": "k" * 20, "page_token_ttl_s": 1}}))
    process = subprocess.Popen(
        [sys.executable, "-m", "platform_core.cli.main", "serve", "--port", "0", "--use-settings"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        url = next(m.group(1) for line in process.stdout if (m := re.search(r"agents connect to ws://(\S+?)/", line)))
        platform_url = f"http://{url}"
        token = page_token(platform_url)
        time.sleep(2.1)
        reply = asyncio.run(offer(platform_url, token, "127.0.0.6"))
        assert reply["message"] == "unauthorized: the page token has expired" and "reload" in reply["hint"]
    finally:
        process.terminate()
        process.wait(30)


def test_page_tokens_expire() -> None:
    now = [1_000_000.0]
    tokens = PageTokens(ttl_s=60, clock=lambda: now[0])
    token, expires = tokens.mint()
    assert expires == 1_000_060 and tokens.problem(token) is None
    now[0] += 61
    assert tokens.problem(token) == "the page token has expired"
    later = token.replace(str(expires), str(expires + 3600))  # a longer life is a forgery
    assert tokens.problem(later) == "the page token is not one this platform issued"
    assert PageTokens(60, clock=lambda: now[0]).problem(tokens.mint()[0]) is not None  # another process's


# --- Host and Origin on every request --------------------------------------------------------------


@pytest.mark.slow
def test_a_foreign_host_name_is_refused_everywhere(platform_url: str) -> None:
    port = urlsplit(platform_url).port
    for path in ("/", "/healthz", CALL_PATH, GATEWAY_PATH, "/page-token"):
        reply = get(platform_url + path, Host=f"rebind.attacker.example:{port}")
        assert reply.status_code == 403, path
        assert "Host 'rebind.attacker.example" in reply.text and "allowed_hosts" in reply.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        assert get(platform_url + "/healthz", Host=host).status_code == 200


@pytest.mark.slow
async def test_a_foreign_origin_is_refused_everywhere(platform_url: str) -> None:
    evil = "http://attacker.example"
    for path in ("/", "/healthz", "/page-token"):
        reply = get(platform_url + path, Origin=evil)
        assert reply.status_code == 403 and "allowed_origins" in reply.text, path
    local_other_port = f"http://127.0.0.1:{(urlsplit(platform_url).port or 80) + 1}"  # another local server
    for origin in (evil, local_other_port, "null"):
        for path in (CALL_PATH, f"{GATEWAY_PATH}?auth_token={API_KEY}"):
            status, body = await refused_status(ws_url(platform_url, path), "127.0.0.1", origin=origin)  # type: ignore[arg-type]
            assert status == 403 and f"web origin {origin!r}" in body, (origin, path)
    # the platform's own origin passes, under either loopback name
    port = urlsplit(platform_url).port
    for own in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
        assert get(platform_url + "/", Origin=own).status_code == 200


def test_origin_and_host_rules() -> None:
    guard = AccessGuard("0.0.0.0", allowed_hosts=["studio.lan"], allowed_origins=["https://studio.example.com/"])
    local = ("192.168.1.5", 8765)

    def refused(host: str, origin: str | None = None) -> int | None:
        headers = Headers([("Host", host)] + ([("Origin", origin)] if origin else []))
        refusal = guard.check(headers, local)
        return refusal.status if refusal else None

    assert refused("192.168.1.5:8765") is None  # the address the connection arrived at
    assert refused("studio.lan:8765", "http://studio.lan:8765") is None
    assert refused("localhost:8765", "https://studio.example.com") is None
    assert refused("192.168.1.6:8765") == 403  # another machine's name
    assert refused("localhost:8765", "http://localhost:3000") == 403  # another local server's page
    assert refused("localhost:bad") == 403 and refused("") == 403
    dual_stack = guard.check(Headers([("Host", "192.168.1.5:8765")]), ("::ffff:192.168.1.5", 8765, 0, 0))
    assert dual_stack is None  # an IPv4 client of a socket bound to "::"


# --- the gateway ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_the_gateway_refuses_keyless_and_wrong_keys(platform_server: RunningPlatform) -> None:
    platform_url = platform_server.url
    since = platform_server.log_path.stat().st_size
    status, body = await refused_status(ws_url(platform_url, GATEWAY_PATH), "127.0.0.5")
    assert status == 401 and "missing_credentials" in body
    await logged(platform_server, since, f"authentication failed from 127.0.0.5 on {GATEWAY_PATH}: {body.strip()}")
    since = platform_server.log_path.stat().st_size
    status, body = await refused_status(ws_url(platform_url, f"{GATEWAY_PATH}?auth_token=dev-key"), "127.0.0.5")
    assert status == 401 and "invalid_api_key" in body
    text = await logged(
        platform_server, since, f"authentication failed from 127.0.0.5 on {GATEWAY_PATH}: {body.strip()}"
    )
    assert "dev-key" not in text
    async with connect(ws_url(platform_url, f"{GATEWAY_PATH}?auth_token={API_KEY}"), open_timeout=TIMEOUT):
        pass  # the right key is let in


# --- the throttle ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_wrong_keys_are_throttled_per_address(platform_url: str) -> None:
    answered = throttled = 0
    started = time.monotonic()
    for _ in range(200):  # the attack of issue 14: 200 wrong keys as fast as the platform answers
        try:
            reply = await offer(platform_url, "guess", "127.0.0.9")
            assert reply["message"] == "unauthorized: invalid API key"
            answered += 1
        except InvalidStatus as exc:
            assert exc.response.status_code == 429
            assert re.match(rb"too many failed attempts, wait \d+ s", exc.response.body or b"")
            assert exc.response.headers["Retry-After"].isdigit()
            throttled += 1
    elapsed = time.monotonic() - started
    print(f"\n200 wrong keys from one address in {elapsed:.2f} s: {answered} checked, {throttled} refused with 429")
    assert answered == 5 and throttled == 195
    status, _ = await refused_status(ws_url(platform_url, f"{GATEWAY_PATH}?auth_token={API_KEY}"), "127.0.0.9")
    assert status == 429  # locked out everywhere, even with the right key, for a while
    # other addresses are not: their key is still checked
    assert (await offer(platform_url, "guess", "127.0.0.10"))["message"] == "unauthorized: invalid API key"


@pytest.mark.slow
async def test_wrong_keys_at_the_gateway_are_throttled(platform_url: str) -> None:
    url = ws_url(platform_url, f"{GATEWAY_PATH}?auth_token=guess")
    statuses = [(await refused_status(url, "127.0.0.11"))[0] for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2


def test_throttle_window_slides() -> None:
    now = [0.0]
    throttle = FailureThrottle(max_failures=3, window_s=10, lockout_s=30, clock=lambda: now[0])
    for _ in range(2):
        throttle.record_failure("a")
    now[0] = 11.0  # those two have left the window
    throttle.record_failure("a")
    assert throttle.retry_after("a") == 0
    throttle.record_failure("a")
    throttle.record_failure("a")
    assert throttle.retry_after("a") == 30 and throttle.retry_after("b") == 0
    now[0] = 41.5
    assert throttle.retry_after("a") == 0


# --- binding beyond loopback ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["dev-key", "short-key"])
def test_serving_beyond_loopback_refuses_weak_keys(key: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "platform_core.cli.main", "serve", "--host", "0.0.0.0", "--port", "0", "--api-key", key],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Refusing to serve on 0.0.0.0" in result.stderr and "API key" in result.stderr


def _serve_until_ready(env: dict[str, str], *options: str) -> tuple[str, str]:
    """Start `serve`, return what it printed (stdout, stderr) up to the agents' URL, and stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "platform_core.cli.main", "serve", "--port", "0", *options],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    printed = []
    try:
        for line in process.stdout:
            printed.append(line)
            if "agents connect to" in line:
                break
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    return "".join(printed), errors


@pytest.mark.slow
def test_serving_beyond_loopback_with_a_strong_key_warns(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    printed, errors = _serve_until_ready(env, "--host", "0.0.0.0", "--api-key", "a-long-random-key-0123456789")
    assert "agents connect to" in printed
    assert "warning: serving on 0.0.0.0: other machines can reach the platform" in errors


@pytest.mark.slow
def test_serve_prints_the_installs_key_and_keeps_it(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    (first, _), (second, _) = _serve_until_ready(env), _serve_until_ready(env)
    key = re.search(r"API key: (\S+)", first)
    assert key and len(key.group(1)) >= 16, first
    assert f"API key: {key.group(1)}" in second  # the same across runs
    assert f"--api-key {key.group(1)}" in first  # the agent command line to use it
    assert saved_api_key(tmp_path / "conversimple-studio" / "settings.json") == key.group(1)


@pytest.mark.slow
def test_call_takes_the_key_from_the_settings_file(platform_server: RunningPlatform, tmp_path: Path) -> None:
    settings = tmp_path / "conversimple-studio" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"server": {"api_key": platform_server.api_key}}))
    env = {k: v for k, v in os.environ.items() if k != "CONVERSIMPLE_API_KEY"} | {"XDG_CONFIG_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "platform_core.cli.main", "call", "--url", platform_server.url, "--text", "Hi."]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    settings.write_text(json.dumps({"server": {"api_key": "not-the-platforms-key"}}))
    env["CONVERSIMPLE_API_KEY"] = platform_server.api_key  # the environment comes before the file
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr


# --- a browser on another origin ------------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><html><body><script>
const target = %(target)s;
const attack = window.attack = { ws: "pending", page: "pending", token: "pending" };
const ws = new WebSocket(target.replace("http", "ws") + "/call");
ws.onopen = () => { attack.ws = "open"; ws.send(JSON.stringify({ type: "offer", sdp: "v=0", api_key: null })); };
ws.onmessage = (m) => { attack.ws = "answered: " + m.data; };
ws.onclose = (e) => { if (attack.ws === "pending") attack.ws = "refused " + e.code; };
fetch(target + "/").then((r) => r.text()).then(
  (t) => { attack.page = t.includes("conversimple-token") ? "read the token" : "read"; },
  () => { attack.page = "blocked"; });
fetch(target + "/page-token").then((r) => r.json()).then(
  () => { attack.token = "read"; }, () => { attack.token = "blocked"; });
</script></body></html>"""


@pytest.fixture
def attacker_site(platform_url: str) -> Iterator[str]:
    """Another web site on this machine (another port: another origin) whose page tries to call."""
    body = (ATTACK_PAGE % {"target": json.dumps(platform_url)}).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
async def test_a_page_on_another_origin_cannot_call_but_the_platforms_own_can(
    platform_server: RunningPlatform, attacker_site: str, tmp_path: Path
) -> None:
    mic = speak("Hello.", tmp_path / "mic.wav", pad_before=1.0)
    async with chromium(attacker_site, mic, tmp_path / "profile") as browser:
        done = "window.attack && !Object.values(window.attack).includes('pending')"
        await browser.wait_for(done, 20)
        attack = await browser.evaluate("window.attack")
        assert attack == {"ws": "refused 1006", "page": "blocked", "token": "blocked"}
        await browser.evaluate(f"location.href = {json.dumps(platform_server.url + '/')}")
        await browser.wait_for("document.readyState === 'complete' && !!window.conversimple", 20)
        await browser.evaluate("window.conversimple.call()")  # no key typed: the page's token
        await browser.wait_for("window.conversimple.conversationId", 30)
        assert (await browser.evaluate("window.conversimple.errors")) == []
        await browser.evaluate("window.conversimple.hangup()")
        await browser.wait_for("window.conversimple.status === 'ended'", 10)
