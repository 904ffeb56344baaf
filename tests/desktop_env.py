"""A screen and sound card for desktop tests: Xvfb and a private PulseAudio with virtual devices.

Nothing here is faked: Xvfb is a real X server, PulseAudio real daemons with null sinks, and the
app's sounddevice streams reach them through ALSA's pulse plugin (Debian's PortAudio has no
PulseAudio host API). See docs/desktop.md for the measurements behind the choices.

Devices (names as sounddevice lists them once `ALSA_CONFIG_PATH` points at our file):
  - "vmic": the microphone. Whatever is played into the `micfeed` sink (``play_into_mic``) is heard.
  - "vspeaker": the speaker, a null sink; ``record_speaker`` records its monitor.
Every daemon is started with stdio redirected and stopped by its PID.

`start_pulse(root, headset=True)` has only a speaker and a (silent) microphone, like a laptop whose only
sound device is a USB headset: `unplug` then leaves PulseAudio nowhere to move the app's streams to, so
they die as with a real unplug (with other devices left, PulseAudio moves the streams there instead).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ALSA_CONF = """\
</usr/share/alsa/alsa.conf>
pcm.vmic { type pulse device vmic }
ctl.vmic { type pulse }
pcm.vspeaker { type pulse device vspeaker }
ctl.vspeaker { type pulse }
"""


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class PulseEnv:
    """A running private PulseAudio; `env` holds the variables a client process needs."""

    root: Path
    env: dict[str, str]
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _run(self, *args: str, timeout: float = 10.0) -> str:
        out = subprocess.run(
            args, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout, check=True
        )
        return out.stdout

    def play_into_mic(self, wav: Path) -> subprocess.Popen[bytes]:
        """Speak `wav` into the virtual microphone in real time (returns the running paplay)."""
        proc = subprocess.Popen(
            ["paplay", "--device=micfeed", str(wav)],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs.append(proc)
        return proc

    def record_speaker(self, out_wav: Path) -> subprocess.Popen[bytes]:
        """Record what the app plays on the virtual speaker (48 kHz mono s16) until stopped."""
        proc = subprocess.Popen(
            [
                "parec",
                "--device=vspeaker.monitor",
                "--file-format=wav",
                "--format=s16le",
                "--rate=48000",
                "--channels=1",
                "--latency-msec=10",
                str(out_wav),
            ],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs.append(proc)
        return proc

    def unplug(self, *devices: str) -> list[str]:
        """Remove devices ("vspeaker", "vmic") as an unplug would: unload the modules that provide them."""
        return unplug(self.env, *devices)

    def stop_process(self, proc: subprocess.Popen[bytes]) -> None:
        _stop(proc)
        if proc in self._procs:
            self._procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self._procs):
            _stop(proc)
        self._procs.clear()


def unplug(env: Mapping[str, str], *devices: str) -> list[str]:
    """`PulseEnv.unplug` for a process that only has the environment (e.g. an app driver); returns the
    unloaded modules' arguments."""

    def pactl(*args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=10, check=True
        ).stdout

    unloaded = []
    for line in pactl("list", "short", "modules").splitlines():
        index, _name, arguments = [*line.split("\t"), "", ""][:3]
        words = arguments.split()
        if any(f"sink_name={d}" in words or f"source_name={d}" in words for d in devices):
            pactl("unload-module", index)
            unloaded.append(arguments)
    if len(unloaded) != len(devices):
        raise RuntimeError(f"unplugged {unloaded}, asked for {devices}")
    return unloaded


def start_pulse(root: Path, *, headset: bool = False) -> PulseEnv:
    """Start PulseAudio under `root` with a virtual microphone and speaker; wait until they run.
    `headset`: those two are the only devices (see the module's docstring)."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (scripts/system-deps.sh installs it)")
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "native"
    alsa_conf = root / "asound.conf"
    alsa_conf.write_text(ALSA_CONF)
    runtime = root / "runtime"
    runtime.mkdir(exist_ok=True)
    env = {
        "PULSE_SERVER": f"unix:{sock}",
        "ALSA_CONFIG_PATH": str(alsa_conf),
        "XDG_RUNTIME_DIR": str(runtime),
        "PULSE_RUNTIME_PATH": str(runtime),
        "PULSE_STATE_PATH": str(root / "state"),
    }
    daemon = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            f"--log-target=file:{root / 'pulse.log'}",  # underruns and latency changes (the echo room's)
            "--log-level=info",
            f"--load=module-native-protocol-unix auth-anonymous=1 socket={sock}",
            "--load=module-null-sink sink_name=vspeaker rate=48000 channels=1",
            *(
                ["--load=module-null-source source_name=vmic rate=48000 channels=1"]
                if headset
                else [
                    "--load=module-null-sink sink_name=micfeed rate=48000 channels=1",
                    "--load=module-remap-source source_name=vmic master=micfeed.monitor",
                ]
            ),
        ],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pulse = PulseEnv(root, env, [daemon])

    def ready() -> bool:
        if daemon.poll() is not None:
            raise RuntimeError(f"pulseaudio exited with {daemon.returncode}")
        try:
            return "vmic" in pulse._run("pactl", "list", "short", "sources", timeout=2)
        except subprocess.SubprocessError:
            return False

    try:
        _wait_for(ready, 10, "PulseAudio to start")
        # Idle null sinks run with ~2 s latency and lose the start of a new stream: keep a
        # low-latency reader on each so they stay awake (desktop.md).
        for sink in ("vspeaker",) if headset else ("vspeaker", "micfeed"):
            proc = subprocess.Popen(
                ["parec", "--latency-msec=10", f"--device={sink}.monitor", "--raw"],
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            pulse._procs.append(proc)
        time.sleep(2.0)
    except BaseException:
        pulse.close()
        raise
    return pulse


@pytest.fixture(scope="session")
def pulse_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseEnv]:
    """A private PulseAudio for the session; also exported to this process's environment."""
    pulse = start_pulse(tmp_path_factory.mktemp("pulse"))
    saved = {k: os.environ.get(k) for k in pulse.env}
    os.environ.update(pulse.env)
    try:
        yield pulse
    finally:
        pulse.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_xvfb(width: int = 1600, height: int = 1000) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Xvfb on a free display; returns (":N", process)."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (scripts/system-deps.sh installs it)")
    for number in range(90, 140):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        proc = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket = Path(f"/tmp/.X11-unix/X{number}")
        try:
            _wait_for(lambda p=proc, s=socket: s.exists() or p.poll() is not None, 10, "Xvfb")
        except RuntimeError:
            _stop(proc)
            raise
        if proc.poll() is None:
            return f":{number}", proc
    raise RuntimeError("no free X display number between :90 and :139")


@pytest.fixture(scope="session")
def xvfb_display() -> Iterator[str]:
    display, proc = start_xvfb()
    try:
        yield display
    finally:
        _stop(proc)


def screenshot_x(display: str, out_png: Path) -> None:
    """Save the whole X screen (xwd + ImageMagick's convert)."""
    out_png.parent.mkdir(parents=True, exist_ok=True)
    xwd = subprocess.run(["xwd", "-root", "-silent", "-display", display], capture_output=True, check=True, timeout=20)
    subprocess.run(["convert", "xwd:-", str(out_png)], input=xwd.stdout, check=True, timeout=30)


def run_scenario(
    studio: Any,
    scenario: Callable[[], Awaitable[None]],
    seen: dict[str, Any],
    out: Path,
    failure_png: Path,
    on_failure: Callable[[], None] | None = None,
) -> int:
    """Run a driver's scenario on the app's loop (in the app's process) and write what it saw as JSON.

    A failure is recorded in `seen["failure"]` with a screenshot of the window; the app always shuts down."""

    async def main() -> None:
        try:
            await scenario()
        except Exception as exc:
            seen["failure"] = f"{type(exc).__name__}: {exc}"
            if on_failure is not None:
                on_failure()
            failure_png.parent.mkdir(exist_ok=True)
            studio.window.grab().save(str(failure_png))
        finally:
            await studio.controller.shutdown()
            studio.window.close()
        await asyncio.to_thread(out.write_text, json.dumps(seen, indent=1, default=str))

    with studio.loop:
        studio.loop.run_until_complete(main())
    return 0


def start_seed_agent(controller: Any) -> subprocess.Popen[bytes]:
    """The seed agent in its own process, connected to the app's embedded platform."""
    root = Path(__file__).resolve().parents[1]
    (root / "artifacts").mkdir(exist_ok=True)
    log = (root / "artifacts" / "seed_agent.log").open("ab")  # why it did not join, when it does not
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("conversimple-agent")),
            "run",
            "resources/agents/seed_agent.py",
            "--url",
            controller.platform.gateway_url,
            "--api-key",
            controller.config.server.api_key,
        ],
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait on the app's loop (without blocking it) until `predicate()` holds; TimeoutError names `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


async def start_studio(studio: Any) -> None:
    """Show the window on the virtual devices (vmic, vspeaker), start the platform, wait for its engines."""
    window, controller = studio.window, studio.controller
    controller.app_settings.input_device = "vmic"
    controller.app_settings.output_device = "vspeaker"
    window.show()
    window.build_panels()
    assert await controller.start_platform(), "the platform did not start"
    await until(lambda: controller.ready, 200, "engines to load")
