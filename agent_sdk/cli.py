"""`conversimple-agent run PATH_OR_DIR --url ws://HOST:PORT/customer_sdk/websocket[,ws://…] --api-key KEY`"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from agent_sdk.agent import DEFAULT_URL
from agent_sdk.dispatcher import Dispatcher, load_agents
from agent_sdk.wire import AuthenticationError, platform_urls

EXIT_AUTH = 3


async def _run(dispatcher: Dispatcher) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, main.cancel)
    try:
        await dispatcher.run_forever()
    except asyncio.CancelledError:
        await dispatcher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conversimple-agent", description="Run agents against the platform")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the Agent classes of a file or folder")
    run.add_argument("path", help="a .py file or a folder of agent modules")
    run.add_argument(
        "--url",
        default=os.environ.get("CONVERSIMPLE_PLATFORM_URL", DEFAULT_URL),
        help="the platform's agent endpoint, or several separated by commas (gateway nodes of a cluster: "
        "after a failure the next attempt goes to the next one); default: %(default)s or $CONVERSIMPLE_PLATFORM_URL",
    )
    run.add_argument(
        "--api-key",
        default=os.environ.get("CONVERSIMPLE_API_KEY"),
        help="your customer's API key (or $CONVERSIMPLE_API_KEY)",
    )
    run.add_argument(
        "--customer-id",
        default=os.environ.get("CONVERSIMPLE_CUSTOMER_ID"),
        help="channel label; the platform takes the customer from the key",
    )
    run.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.api_key:
        parser.error("give --api-key (or set CONVERSIMPLE_API_KEY): the platform's API key for your customer")
    try:
        agents = load_agents(args.path)
    except (OSError, ImportError, SyntaxError) as exc:
        print(f"conversimple-agent: cannot load agents from {args.path}: {exc}", file=sys.stderr)
        return 2
    if not agents:
        print(f"conversimple-agent: no Agent subclass found in {args.path}; subclass agent_sdk.Agent", file=sys.stderr)
        return 2
    names = ", ".join(f"{a.__name__} (agent_id={a.agent_id!r})" for a in agents)
    logging.getLogger("agent_sdk").info("serving %s at %s", names, args.url)
    dispatcher = Dispatcher(agents, args.api_key, platform_urls(args.url), args.customer_id)
    try:
        asyncio.run(_run(dispatcher))
    except AuthenticationError as exc:
        print(f"conversimple-agent: the platform refused the API key ({exc}); check --api-key", file=sys.stderr)
        return EXIT_AUTH
    return 0


if __name__ == "__main__":
    sys.exit(main())
