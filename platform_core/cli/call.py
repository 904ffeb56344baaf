"""`conversimple-platform call`: place one call as a real WebRTC client and write a report.

The call itself is platform_core.calls (place_call); this module reads the arguments, prints the
report's summary and turns the outcome into the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from platform_core.calls import format_report, place_call
from platform_core.config import saved_api_key
from platform_core.transport.client import CallError
from platform_core.transport.wav_source import AudioFileError

# 0: every turn answered (or a silent input: no turn); 1: the call could not be placed, the platform
# ended it, a turn failed or was not answered, or an error was reported; 2: unusable input; 3: timeout.
EXIT_OK, EXIT_CALL_FAILED, EXIT_BAD_INPUT, EXIT_TIMEOUT = 0, 1, 2, 3
FAILED_STATUSES = ("ended_by_platform", "turn_failed", "not_answered")


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `conversimple-platform call`."""
    parser.add_argument("--url", default="http://127.0.0.1:8765", help="the platform (default: %(default)s)")
    parser.add_argument("--agent-id", default=None, help="the agent to call (default: the platform's default)")
    parser.add_argument(
        "--api-key",
        default=None,
        help="the platform's API key (default: $CONVERSIMPLE_API_KEY, else the key in this machine's settings "
        "file, which a local `serve` uses)",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--input", metavar="IN.wav", help="the caller's voice, played in real time")
    what.add_argument("--text", metavar="TEXT", help="a typed turn instead of a voice")
    parser.add_argument("--output", metavar="OUT.wav", help="record the agent's audio (48 kHz mono)")
    parser.add_argument("--report", metavar="REPORT.json", help="write the call report as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up after S seconds (default: input length + 60 s)",
    )


def call_main(args: argparse.Namespace) -> int:
    """Run `conversimple-platform call`; returns the process exit code."""
    try:
        report = asyncio.run(
            place_call(
                args.url,
                args.agent_id,
                input_wav=args.input,
                text=args.text,
                output_wav=args.output,
                report_path=args.report,
                api_key=args.api_key or os.environ.get("CONVERSIMPLE_API_KEY") or saved_api_key(),
                max_duration_s=args.timeout,
            )
        )
    except AudioFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CallError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CALL_FAILED
    print(format_report(report))
    return exit_code(report)


def exit_code(report: dict[str, Any]) -> int:
    """The exit code of a finished call: it failed when it timed out, the platform ended it, a turn
    failed or got no answer, or its report holds an error. A silent input (no turn, status
    "no_speech") is not a failure."""
    if report["status"] == "timeout":
        return EXIT_TIMEOUT
    if report["status"] in FAILED_STATUSES or report["errors"]:
        return EXIT_CALL_FAILED
    return EXIT_OK
