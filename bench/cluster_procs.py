"""The processes of a cluster on this machine for bench/cluster_scale.py, and what they cost (/proc).

A real nats-server (JetStream on: presence is a key-value bucket), one front door, N media workers (the
stand-in engines of bench/standin_engines.py, or the real default engines), one gateway node and one
agent_sdk echo agent, each in its own process, on loopback. CPU seconds and RSS are read from
/proc/PID/stat and /proc/PID/status (Linux).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cluster_roundtrip import start_broker
from bench.harness import REPO, RunningPlatform, start_platform, stop_platform
from bench.tool_roundtrip import OURS

KEY = "bench-cluster-key"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STANDIN_MODULE = "bench.standin_engines"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (every thread; children not included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def health(url: str) -> dict[str, Any]:
    """A process's /healthz report (also while degraded: the 503 carries the same report)."""
    request = urllib.request.Request(f"{url}/healthz?format=json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            report: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        report = json.loads(exc.read())
    return report


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Cluster:
    """The processes, by name ("broker", "front", "gateway", "agent", "w1"...), and the URLs to call."""

    broker_url: str
    front: RunningPlatform
    gateway: RunningPlatform
    workers: dict[str, RunningPlatform]
    pids: dict[str, int]
    _children: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def api_key(self) -> str:
        return self.front.api_key

    def worker_url(self, name: str) -> str:
        return self.workers[name].url

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process, and of this one (the callers) as "callers"."""
        seconds = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        seconds["callers"] = cpu_seconds(os.getpid())
        return seconds

    def rss(self) -> dict[str, float]:
        return {name: round(rss_mb(pid), 1) for name, pid in self.pids.items()} | {
            "callers": round(rss_mb(os.getpid()), 1)
        }

    def stop(self) -> None:
        for running in [self.front, *self.workers.values(), self.gateway]:
            stop_platform(running.process)
        for child in self._children:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _start_role(tmp: Path, role: str, broker: str, node_id: str, *extra: str, standin: bool) -> RunningPlatform:
    module = STANDIN_MODULE if standin else "platform_core.cli.main"
    args = ("--role", role, "--broker", broker, "--node-id", node_id, *extra)
    return start_platform(tmp, *args, api_key=KEY, module=module, log_name=f"{node_id}.log")


def _start_agent(tmp: Path, gateway_url: str) -> subprocess.Popen[bytes]:
    (tmp / "echo_agent.py").write_text(OURS)
    command = [sys.executable, "-m", "agent_sdk.cli", "run", str(tmp / "echo_agent.py"), "--url", gateway_url]
    command += ["--api-key", KEY, "--log-level", "WARNING"]
    log = (tmp / "agent.log").open("w")  # its errors for conversations that ended first (the set-up probes)
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=log)


def start_cluster(tmp: Path, workers: int, *, standin: bool, max_calls: int) -> Cluster:
    """Broker, gateway node, agent, `workers` media workers (w1, w2...) and the front door, all ready."""
    broker, url = start_broker("-js", "-sd", str(tmp / "jetstream"))
    children: list[subprocess.Popen[Any]] = [broker]
    started: list[RunningPlatform] = []
    try:
        gateway = _start_role(tmp, "gateway", url, "gw1", standin=False)
        started.append(gateway)
        agent = _start_agent(tmp, gateway.gateway_url)
        children.append(agent)
        _wait("the echo agent did not join the gateway node", lambda: health(gateway.url)["agents"] >= 1, 30)
        pool = {}
        for i in range(1, workers + 1):
            pool[f"w{i}"] = _start_role(tmp, "worker", url, f"w{i}", "--max-calls", str(max_calls), standin=standin)
            started.append(pool[f"w{i}"])
        front = _start_role(tmp, "front", url, "front1", standin=False)
        started.append(front)
        _wait(f"the front door did not see {workers} workers", lambda: len(health(front.url)["workers"]) == workers, 30)
    except BaseException:
        for running in started:
            stop_platform(running.process)
        for child in children:
            child.kill()
            child.wait()
        raise
    pids = {"broker": broker.pid, "front": front.process.pid, "gateway": gateway.process.pid, "agent": agent.pid}
    pids |= {name: w.process.pid for name, w in pool.items()}
    return Cluster(url, front, gateway, pool, pids, children)
