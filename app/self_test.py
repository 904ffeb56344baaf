"""`conversimple-studio --self-test`: one scripted spoken conversation through everything, no microphone.

Starts the platform in this process (headless: no Qt, no display), starts the bundled seed agent as
a separate process through the same executable (`--run-agent`; a packaged build has no Python),
speaks "What's the weather in San Francisco?" with the bundled Piper voice, places a real WebRTC
call to the seed agent and checks every stage: models, engines, agent, speech, call, transcript,
tool call, spoken answer and latency metrics. Prints a short report and exits 0 only if all passed.
Everything it made (question, answer, report, agent log) is kept in `user_data_dir()/self-test/`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

QUESTION = "What's the weather in San Francisco?"
EXPECTED_WORDS = ("weather", "san", "francisco")
EXPECTED_TOOL = "get_weather"
AGENT_ID = "seed"  # resources/agents/seed_agent.py
EXIT_PASSED, EXIT_FAILED = 0, 1
_VOICED_DBFS = -45.0  # a 20 ms frame of the answer louder than this counts as voice
_MIN_VOICED_S = 0.3


@dataclass
class Stage:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class SelfTest:
    """Stages as they complete, printed at once so a slow or stuck stage is visible."""

    out: IO[str]
    stages: list[Stage] = field(default_factory=list)

    def record(self, name: str, ok: bool, seconds: float, detail: str = "") -> bool:
        stage = Stage(name, ok, seconds, detail)
        self.stages.append(stage)
        print(_stage_line(stage), file=self.out, flush=True)
        return ok

    async def run(self, name: str, step: Callable[[], Awaitable[str]]) -> bool:
        """Run one stage; its exception message becomes the FAILED detail."""
        started = time.monotonic()
        try:
            detail = await step()
        except Exception as exc:  # any failure is a FAILED stage with its message, never a traceback
            return self.record(name, False, time.monotonic() - started, _one_line(exc))
        return self.record(name, True, time.monotonic() - started, detail)

    @property
    def passed(self) -> bool:
        return bool(self.stages) and all(s.ok for s in self.stages)


def _one_line(exc: BaseException) -> str:
    from platform_core import StudioError

    if isinstance(exc, StudioError):
        text = " ".join(exc.message.split())
        return f"{text} -> {exc.hint}" if exc.hint else text
    return " ".join(str(exc).split()) or type(exc).__name__


def _stage_line(stage: Stage) -> str:
    return f"  {'OK' if stage.ok else 'FAILED':<6}  {stage.name:<11} {stage.seconds:6.2f} s  {stage.detail}".rstrip()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def voiced_seconds(pcm: np.ndarray, rate: int) -> float:
    """Seconds of 20 ms frames louder than -45 dBFS (the answer is speech, not silence or hiss)."""
    size = rate // 50
    n = pcm.size // size
    if n == 0:
        return 0.0
    frames = pcm[: n * size].astype(np.float32).reshape(n, size) / 32768.0
    dbfs = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return float(np.sum(dbfs > _VOICED_DBFS)) * 0.02


def _answered_turn(turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The turn that ran the tool (it carries the figures), else the first completed one."""
    with_tool = [t for t in turns if any(c.get("name") == EXPECTED_TOOL for c in t.get("tool_calls", []))]
    completed = [t for t in turns if t.get("completed")]
    found = with_tool or completed
    return found[0] if found else None


def check_call(report: dict[str, Any], answer_pcm: np.ndarray, answer_rate: int) -> list[Stage]:
    """The checks on a finished call report (pure: no I/O), one Stage each."""
    turns = report.get("turns", [])
    heard = " ".join(t.get("user_text", "") for t in turns)
    missing = [w for w in EXPECTED_WORDS if w not in words(heard)]
    calls = [c for t in turns for c in t.get("tool_calls", [])]
    tool = next((c for c in calls if c.get("name") == EXPECTED_TOOL), None)
    turn = _answered_turn(turns) or {}
    metrics = turn.get("metrics", {})
    absent = [name for name, value in metrics.items() if value is None] if metrics else ["all"]
    said = " ".join(t.get("agent_text", "") for t in turns).strip()
    voiced = voiced_seconds(answer_pcm, answer_rate)
    status = report.get("status")
    errors = "; ".join(f"{e.get('where')}: {e.get('message')}" for e in report.get("errors", []))
    return [
        Stage(
            "call",
            status == "ok" and bool(turns),
            report.get("call_duration_s", 0.0),
            f"{len(turns)} turn(s), status {status}"
            + (f"; {errors}" if errors else "")
            + "".join(f"; {n}" for n in report.get("notes", [])),
        ),
        Stage(
            "transcript",
            not missing and bool(turns),
            0.0,
            f"heard {heard.strip()!r}" + (f"; missing {missing}" if missing else ""),
        ),
        Stage("tool call", tool is not None and tool.get("status") == "done", 0.0, _tool_detail(tool, calls)),
        Stage(
            "answer",
            bool(said) and voiced >= _MIN_VOICED_S,
            0.0,
            f"{voiced:.1f} s of voice: {said!r}" if said else f"no answer text; {voiced:.1f} s of voice",
        ),
        Stage("metrics", not absent, 0.0, "all present" if not absent else f"missing {', '.join(absent)}"),
    ]


def _tool_detail(tool: dict[str, Any] | None, calls: list[dict[str, Any]]) -> str:
    if tool is None:
        seen = ", ".join(f"{c.get('name')}:{c.get('status')}" for c in calls) or "none"
        return f"the LLM did not call {EXPECTED_TOOL} (calls: {seen})"
    outcome = tool.get("result") if tool.get("status") == "done" else tool.get("error")
    return f"{EXPECTED_TOOL}({json.dumps(tool.get('arguments'))}) {tool.get('status')}: {json.dumps(outcome)}"


def format_latency(report: dict[str, Any]) -> list[str]:
    turn = _answered_turn(report.get("turns", []))
    if turn is None:
        return []
    lines = ["latency of the answered turn (seconds):"]
    for name, value in turn["metrics"].items():
        lines.append(f"  {name:<20} {'-' if value is None else f'{value:.3f}'}")
    for call in turn.get("tool_calls", []):
        if call.get("duration_s") is not None:
            lines.append(f"  {'tool ' + str(call['name']):<20} {call['duration_s']:.3f}")
    return lines


def agent_command(agent_file: Path, url: str, api_key: str) -> list[str]:
    """How to start an agent: the bundle's own executable (no Python in a bundle), or this Python."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--run-agent", str(agent_file), "--url", url, "--api-key", api_key]
    return [sys.executable, "-m", "agent_sdk.cli", "run", str(agent_file), "--url", url, "--api-key", api_key]


def run_agent(argv: Sequence[str]) -> int:
    """The hidden `--run-agent PATH --url URL --api-key KEY`: agent_sdk's runner inside the bundle."""
    from agent_sdk.cli import main as agent_main

    return agent_main(["run", *argv])


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("conversimple-studio")
    except PackageNotFoundError:
        return "unknown version"


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class _SelfTestRun:
    """The self-test's stages, in order, on a platform in this process; each stage is recorded in `test`."""

    def __init__(self, folder: Path, test: SelfTest, timeout_s: float) -> None:
        from platform_core import Platform, PlatformConfig

        self.folder, self.test, self.timeout_s = folder, test, timeout_s
        config = PlatformConfig()  # the defaults, not the user's settings: the bundled engines are under test
        config.server.port = 0
        config.server.api_key = self.api_key = secrets.token_hex(8)
        self.platform = Platform(config)
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_log = folder / "agent.log"
        self.question = folder / "question.wav"

    async def run(self) -> None:
        if not await self.test.run("models", self.models):
            return
        try:
            for name, stage in (("engines", self.engines), ("agent", self.start_agent), ("speech", self.speech)):
                if not await self.test.run(name, stage):
                    return
            await self.call()
        finally:
            await self.stop_agent()
            await self.platform.stop()

    async def models(self) -> str:
        from platform_core import ensure_model, load_manifest

        paths = [await asyncio.to_thread(ensure_model, model_id) for model_id in load_manifest().default_ids]
        return ", ".join(p.name for p in paths)

    async def engines(self) -> str:
        await self.platform.start()
        return f"{self.platform.llm_name}, serving {self.platform.url}"

    async def start_agent(self) -> str:
        from platform_core import resource_path

        seed = resource_path("agents", "seed_agent.py")
        with self.agent_log.open("wb") as log:
            self.agent = agent = await asyncio.to_thread(  # fork and exec off the loop: it carries the call's audio
                subprocess.Popen,
                agent_command(seed, self.platform.gateway_url, self.api_key),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not any(a.joined for a in self.platform.agents()):
            if agent.poll() is not None:
                raise RuntimeError(f"the seed agent exited with code {agent.returncode}: {_tail(self.agent_log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the seed agent did not connect within 60 s: {_tail(self.agent_log)}")
            await asyncio.sleep(0.1)
        return f"{seed.name} connected (pid {agent.pid})"

    async def speech(self) -> str:
        from platform_core import write_wav

        chunks = [c async for c in self.platform.synthesize(QUESTION)]
        rate = self.platform.speech_rate
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        if voiced_seconds(pcm, rate) < _MIN_VOICED_S:
            raise RuntimeError("the Piper voice produced no audible speech")
        pad = np.zeros(rate // 2, dtype=np.int16)  # the VAD needs silence around the words
        write_wav(self.question, np.concatenate([pad, pcm, pad]), rate)
        return f"{QUESTION!r}, {pcm.size / rate:.1f} s"

    async def call(self) -> None:
        from platform_core import WEBRTC_RATE, AudioFileError, place_call, read_audio

        answer = self.folder / "answer.wav"
        started = time.monotonic()
        try:
            report = await place_call(
                self.platform.url,
                AGENT_ID,
                input_wav=self.question,
                output_wav=answer,
                report_path=self.folder / "call-report.json",
                api_key=self.api_key,
                max_duration_s=self.timeout_s,
            )
        except Exception as exc:
            self.test.record("call", False, time.monotonic() - started, _one_line(exc))
            return
        try:
            pcm = read_audio(answer)
        except AudioFileError:  # no answer, or a silent one: check_call says which stage failed
            pcm = np.zeros(0, dtype=np.int16)
        for stage in check_call(report, pcm, WEBRTC_RATE):
            self.test.record(stage.name, stage.ok, stage.seconds, stage.detail)
        for line in format_latency(report):
            print(line, file=self.test.out, flush=True)

    async def stop_agent(self) -> None:
        agent = self.agent
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                await asyncio.to_thread(agent.wait, 10)
            except subprocess.TimeoutExpired:
                agent.kill()


async def _self_test(folder: Path, test: SelfTest, timeout_s: float) -> None:
    await _SelfTestRun(folder, test, timeout_s).run()  # built on the loop: the platform's objects belong to it


def self_test_main(argv: Sequence[str], out: IO[str] | None = None) -> int:
    """Run the self-test; 0 only when every stage passed."""
    from platform_core import user_data_dir

    parser = argparse.ArgumentParser(
        prog="conversimple-studio --self-test", description="Run one scripted spoken call through the bundled engines."
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help=f"keep the files here (default: a new folder in {user_data_dir() / 'self-test'})",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="give up on the call after S seconds")
    args = parser.parse_args(list(argv))
    out = out or sys.stdout
    folder = args.output_dir or user_data_dir() / "self-test" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"Conversimple Studio {_version()} self-test: {QUESTION!r} to the seed agent", file=out, flush=True)
    test = SelfTest(out)
    started = time.monotonic()
    try:
        asyncio.run(_self_test(folder, test, args.timeout))
    except KeyboardInterrupt:
        test.record("interrupted", False, time.monotonic() - started, "stopped by Ctrl+C")
    total = time.monotonic() - started
    failed = [s.name for s in test.stages if not s.ok]
    with contextlib.suppress(OSError):
        (folder / "self-test.json").write_text(
            json.dumps(
                {"passed": test.passed, "total_s": round(total, 3), "stages": [s.__dict__ for s in test.stages]},
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
    print(f"files: {folder}", file=out)
    if test.passed:
        print(f"PASSED: all {len(test.stages)} stages in {total:.1f} s", file=out, flush=True)
        return EXIT_PASSED
    print(
        f"FAILED: {', '.join(failed) or 'no stage ran'} ({total:.1f} s). Send the folder above with the "
        "output of this command to the developers.",
        file=out,
        flush=True,
    )
    return EXIT_FAILED


def headless_command(argv: Sequence[str]) -> int | None:
    """Handle the flags that need no window (`--self-test`, `test PATH...`, the hidden `--run-agent` and
    `--run-llm-server`); None otherwise."""
    args = list(argv)
    if args[:1] == ["--run-agent"]:
        return run_agent(args[1:])
    if args[:1] == ["test"]:  # QA runs (docs/qa.md), the same runner as `conversimple-platform test`
        from platform_core import run_qa

        return run_qa(args[1:])
    if args[:1] == ["--run-llm-server"]:  # the bundle's embedded llama.cpp runs in a child process
        from platform_core import run_llm_server

        return run_llm_server(args[1:])
    if "--self-test" in args:
        args.remove("--self-test")
        return self_test_main(args)
    return None


if __name__ == "__main__":
    sys.exit(self_test_main(sys.argv[1:]))
