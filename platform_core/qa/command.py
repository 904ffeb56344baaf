"""The QA runner's command: `conversimple-platform test PATH...` and the packaged `conversimple-studio test`.

Reads the arguments, prints one line per scenario run (and why it failed), writes the reports and turns
the outcome into the exit code. It lives in `qa/`, not `cli/`, because the desktop app's executable runs
it too (through `platform_core.run_qa`), and nothing may import `cli/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from platform_core.errors import StudioError
from platform_core.files import write_text_atomic
from platform_core.qa.loader import find_scenario_files, load_scenario
from platform_core.qa.results import ScenarioResult
from platform_core.qa.runner import SuiteResult, run_suite, select
from platform_core.qa.scenario import Scenario

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_test_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `conversimple-platform test`."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="scenario files (.yaml) or folders of them")
    parser.add_argument("--url", help="test a running platform (default: start one for the run)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CONVERSIMPLE_API_KEY"),
        help="the running platform's API key, with --url (default: $CONVERSIMPLE_API_KEY)",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run every scenario N times (flakiness)")
    parser.add_argument("-k", dest="keyword", metavar="WORDS", help="only scenarios whose name or file holds a word")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="also write the JUnit XML here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the JSON report here")
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write the HTML report here")
    parser.add_argument(
        "--report-dir", type=Path, metavar="DIR", help="reports and recordings (default: a new folder in ./qa-reports)"
    )


def _load(paths: list[str], keyword: str | None) -> list[Scenario]:
    """Every scenario of `paths`; every bad file is reported (not just the first) as one StudioError."""
    problems, scenarios = [], []
    for path in find_scenario_files(paths):
        try:
            scenarios.append(load_scenario(path))
        except StudioError as exc:
            problems.append(exc.message)
    if problems:
        raise StudioError("\n".join(problems), "see docs/qa.md for the scenario format")
    chosen = select(scenarios, keyword)
    if not chosen:
        raise StudioError(f"no scenario matches -k {keyword!r} (of {len(scenarios)})", "check the words given to -k")
    return chosen


def _print_result(r: ScenarioResult) -> None:
    run = f" [run {r.run}]" if r.run > 1 else ""
    verdict = "PASS" if r.passed else "FAIL"
    print(f"{verdict}  {r.scenario.name}{run}  ({len(r.turns)} turn(s), {r.record.duration_s:.1f} s)", flush=True)
    if r.error:
        print(f"      {r.scenario.path}: the call failed: {r.error}", flush=True)
    for t in r.turns:
        for problem in [str(f) for f in t.failures] + ([t.note] if t.timed_out else []):
            print(f"      {r.scenario.path}:{t.turn.line}: turn {t.turn.index} ({t.turn.label}): {problem}", flush=True)


def _write_reports(suite: SuiteResult, args: argparse.Namespace, folder: Path) -> list[Path]:
    from platform_core.qa.reports import html_report, json_report, junit_report

    def render(kind: str, base: Path) -> str:
        if kind == "html":
            return html_report(suite, base)
        if kind == "junit":
            return junit_report(suite)
        return json.dumps(json_report(suite, base), indent=1) + "\n"

    written = []
    for kind, default, extra in (
        ("html", folder / "report.html", args.html),
        ("junit", folder / "junit.xml", args.junit),
        ("json", folder / "report.json", args.json),
    ):
        for path in [default] + ([extra] if extra is not None else []):
            write_text_atomic(path, render(kind, path.resolve().parent))
            written.append(path)
    return written


def _summary(suite: SuiteResult) -> None:
    runs, failed = len(suite.results), sum(not r.passed for r in suite.results)
    print(f"{runs} run(s): {runs - failed} passed, {failed} failed in {suite.duration_s:.1f} s")
    tally = suite.tally()
    if any(n > 1 for _, n in tally.values()):
        for key, (passed, runs) in tally.items():
            flag = "  FLAKY" if 0 < passed < runs else ""
            print(f"  {passed}/{runs} passed  {key}{flag}")


async def _run(args: argparse.Namespace, scenarios: list[Scenario], folder: Path, suite: SuiteResult) -> None:
    from platform_core.qa.targets import EmbeddedTarget, RemoteTarget, Target

    target: Target = RemoteTarget(args.url, args.api_key) if args.url else EmbeddedTarget()
    where = args.url or "the embedded platform (loading the engines)"
    print(f"QA run: {len(scenarios)} scenario(s) x {args.repeat} against {where}", flush=True)
    await target.start()
    try:
        await run_suite(scenarios, target, folder, repeat=args.repeat, on_result=_print_result, suite=suite)
    finally:
        await target.aclose()


def qa_main(args: argparse.Namespace) -> int:
    """Run `conversimple-platform test`; 0 only when every expectation of every run held."""
    if args.repeat < 1:
        print("error: --repeat must be 1 or more", file=sys.stderr)
        return EXIT_USAGE
    if args.url and not args.api_key:
        print("error: --url needs --api-key (or $CONVERSIMPLE_API_KEY): the platform's key", file=sys.stderr)
        return EXIT_USAGE
    try:
        scenarios = _load(args.paths, args.keyword)
    except StudioError as exc:
        print(f"error: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return EXIT_USAGE
    folder = args.report_dir or Path("qa-reports") / time.strftime("%Y%m%d-%H%M%S")
    suite = SuiteResult()
    try:
        asyncio.run(_run(args, scenarios, folder, suite))
    except StudioError as exc:
        print(f"error: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl+C: what ran is still reported, and the run counts as failed
        print(f"stopped by Ctrl+C after {len(suite.results)} run(s)", file=sys.stderr)
        suite.stopped = "stopped by Ctrl+C"
        if not suite.results:
            return EXIT_FAILED
    _summary(suite)
    print("reports: " + ", ".join(str(p) for p in _write_reports(suite, args, folder)))
    return EXIT_PASSED if suite.passed else EXIT_FAILED


def main(argv: Sequence[str], prog: str = "conversimple-studio test") -> int:
    """The command on its own (the packaged build's `conversimple-studio test PATH...`)."""
    import logging

    parser = argparse.ArgumentParser(prog=prog, description="Run QA scenario files as real calls (docs/qa.md).")
    add_test_arguments(parser)
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return qa_main(args)
