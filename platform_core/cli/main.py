"""`conversimple-platform`: serve the platform headless, place calls, prepare models, run a demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from platform_core.cli.progress import print_progress, stop_on_signals
from platform_core.config import PlatformConfig, load_settings

if TYPE_CHECKING:
    from platform_core.platform import Platform


def _config_from_args(args: argparse.Namespace) -> PlatformConfig:
    try:
        config = load_settings() if args.use_settings else PlatformConfig()
    except ValueError as exc:
        print(f"warning: {exc}", file=sys.stderr)
        config = PlatformConfig()
    config.server.host = args.host
    config.server.port = args.port
    if args.api_key:
        config.server.api_key = args.api_key
    elif not args.use_settings:
        config.server.api_key = _install_key(config.server.api_key)
    if args.threads:
        config.engines.stt_threads = config.engines.llm_threads = config.engines.tts_threads = args.threads
    for option, attribute in (
        ("llm", "llm"),
        ("llm_model", "llm_model"),
        ("llm_url", "llm_url"),
        ("stt_model", "stt_model"),
    ):
        value = getattr(args, option, None)
        if value:
            setattr(config.engines, attribute, value)
    if getattr(args, "turn_detection", None):
        config.voice.turn_detection = args.turn_detection
    if getattr(args, "turn_max_wait", None) is not None:
        config.voice.turn_max_wait_s = args.turn_max_wait
    if getattr(args, "endpoint_silence", None) is not None:
        config.voice.endpoint_silence_s = args.endpoint_silence
    if getattr(args, "llm_parallel", None):
        config.engines.llm_parallel = args.llm_parallel
    if getattr(args, "llm_queue_wait", None) is not None:
        config.engines.llm_queue_wait_s = args.llm_queue_wait
    if getattr(args, "max_calls", None) is not None:
        config.server.max_calls = args.max_calls
    if getattr(args, "llm_draft_reply", False):
        config.engines.llm_draft_reply = True
    return config


def _install_key(fallback: str) -> str:
    """The key saved in the settings file (a first run creates it), so it stays the same across runs."""
    try:
        return load_settings().server.api_key
    except (ValueError, OSError) as exc:
        print(f"warning: {exc}; this run uses a new random API key", file=sys.stderr)
        return fallback


def _print_access(platform: Platform) -> None:
    key = platform.config.server.api_key
    print(f"API key: {key}  (callers and agents need it; the page at {platform.url} has its own token)", flush=True)
    print(
        f"run an agent: conversimple-agent run resources/agents/seed_agent.py --url {platform.gateway_url} "
        f"--api-key {key}",
        flush=True,
    )
    if platform.exposure_warning:
        print(f"warning: {platform.exposure_warning}", file=sys.stderr, flush=True)


async def _serve(args: argparse.Namespace) -> int:
    if args.role != "all":
        from platform_core.cli.cluster import serve_role

        return await serve_role(args, _config_from_args(args))
    from platform_core.platform import Platform, PlatformError

    platform = Platform(_config_from_args(args))
    platform.bus.subscribe(print_progress)
    stop = stop_on_signals()
    try:
        await platform.start(wait_for_engines=False)
        _print_access(platform)
        print(f"agents connect to {platform.gateway_url}", flush=True)
        await platform.wait_ready()
        print(f"listening on {platform.url}", flush=True)
        await stop.wait()
        return 0
    except PlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        dog = platform.watchdog
        print(
            f"event loop: worst stall {dog.worst_s * 1000:.0f} ms, {dog.stalls} stalls over "
            f"{dog.threshold_s * 1000:.0f} ms" + (f" (worst in {dog.worst_where})" if dog.worst_where else ""),
            flush=True,
        )
        await platform.stop()


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--api-key",
        default="",
        help="the API key callers and agents use (default: the install's random key, kept in the settings file)",
    )
    parser.add_argument("--llm", choices=["embedded", "ollama", "openai"], help="LLM backend")
    parser.add_argument("--llm-model", help="model id (embedded) or server model name")
    parser.add_argument("--llm-url", help="server URL for ollama / openai backends")
    parser.add_argument("--stt-model", help="whisper-tiny.en, whisper-base, or a ggml .bin path")
    parser.add_argument("--llm-parallel", type=int, help="requests the embedded LLM serves at once (default: 1)")
    parser.add_argument(
        "--llm-queue-wait",
        type=float,
        metavar="S",
        help="longest wait for the LLM (queued, or restarting) before a 'busy' answer (20)",
    )
    parser.add_argument(
        "--max-calls",
        type=_at_least_one,
        metavar="N",
        help="concurrent calls; the next caller is told 'busy' at connect (default: 4)",
    )
    parser.add_argument(
        "--llm-draft-reply", action="store_true", help="draft the reply beside the tool choice (docs/engines.md)"
    )
    parser.add_argument(
        "--turn-detection",
        choices=["smart-turn", "silence"],
        help="end turns by the turn model, holding unfinished sentences, or by silence alone (default)",
    )
    parser.add_argument(
        "--endpoint-silence", type=float, metavar="S", help="the caller's silence that ends a turn (0.3)"
    )
    parser.add_argument(
        "--turn-max-wait", type=float, metavar="S", help="longest hold of a turn the model judges unfinished (3)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for each engine (default: every core, as the engines take turns)",
    )
    # Also after the command ("serve -v"); SUPPRESS keeps a top-level -v from being reset.
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO")
    parser.add_argument("--use-settings", action="store_true", help="start from the desktop app's saved settings")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conversimple-platform", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the platform headless (web page, WebRTC calls, agent gateway)")
    _add_server_arguments(serve)

    from platform_core.cli.cluster import add_cluster_arguments, add_role_arguments

    add_role_arguments(serve)
    add_cluster_arguments(sub.add_parser("cluster", help="a cluster on a message broker: `cluster status`"))

    from platform_core.cli.call import add_call_arguments

    call = sub.add_parser("call", help="place a WebRTC call to a running platform and write a report")
    add_call_arguments(call)

    from platform_core.cli.qa_run import add_test_arguments

    add_test_arguments(sub.add_parser("test", help="run QA scenario files as real calls and write reports"))

    # Its own parser (models/prepare.py) reads the arguments, so `prepare-models -h` shows them all.
    prepare = sub.add_parser("prepare-models", help="assemble, verify (and --install) the model files", add_help=False)
    prepare.add_argument("arguments", nargs="*", help="IDS, --all, --verify, --install, -h")

    demo = sub.add_parser("demo", help="start the platform in-process and place one scripted spoken call")
    demo.add_argument("--text", default="What's the weather in San Francisco?")
    demo.add_argument("--agent-id", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "prepare-models":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        return asyncio.run(_serve(args))
    if args.command == "cluster":
        from platform_core.cli.cluster import cluster_main

        return cluster_main(args)
    if args.command == "call":
        from platform_core.cli.call import call_main

        return call_main(args)
    if args.command == "test":
        from platform_core.cli.qa_run import qa_main

        return qa_main(args)
    if args.command == "prepare-models":
        from platform_core.models.prepare import prepare_main

        return prepare_main(unknown + list(args.arguments))
    if args.command == "demo":
        from platform_core.cli.demo import run_demo

        return asyncio.run(run_demo(args.text, args.agent_id))
    return 2


if __name__ == "__main__":
    sys.exit(main())
