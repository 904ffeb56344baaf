"""Wrong API keys against /call from one address, as fast as the platform answers (issue 14): how many
it checks, how many it refuses with 429, and how long it took.

    python -m bench.wrong_keys                 # starts a platform (bench.harness) and attacks it
    python -m bench.wrong_keys http://HOST:PORT [ATTEMPTS]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.harness import start_platform, stop_platform


async def attack(url: str, attempts: int) -> dict[str, float]:
    """`attempts` offers with a wrong key, one after the other; the counts of each answer."""
    checked = throttled = other = 0
    started = time.monotonic()
    for _ in range(attempts):
        try:
            async with connect(url.replace("http://", "ws://", 1) + "/call", open_timeout=10) as ws:
                await ws.send(json.dumps({"type": "offer", "sdp": "v=0\r\n", "api_key": "a-wrong-guess"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if reply.get("type") == "error" and "unauthorized" in reply.get("message", ""):
                    checked += 1
                else:
                    other += 1
        except InvalidStatus as exc:
            if exc.response.status_code == 429:
                throttled += 1
            else:
                other += 1
    elapsed = time.monotonic() - started
    return {"attempts": attempts, "seconds": elapsed, "checked": checked, "throttled": throttled, "other": other}


def main(argv: list[str]) -> int:
    attempts = int(argv[1]) if len(argv) > 1 else 200
    if argv:
        result = asyncio.run(attack(argv[0], attempts))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            platform = start_platform(Path(tmp))
            try:
                result = asyncio.run(attack(platform.url, attempts))
            finally:
                stop_platform(platform.process)
    print(
        f"{result['attempts']:.0f} wrong keys from one address in {result['seconds']:.2f} s: "
        f"{result['checked']:.0f} checked (the platform answered 'unauthorized'), "
        f"{result['throttled']:.0f} refused with 429, {result['other']:.0f} other answers"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
