"""Something the app needs is missing: a model, the WAV file given as the microphone, the microphone itself.

Each case runs the real app (offscreen) in its own process with its own settings and data folders, through
`app.main`'s own `build` and `run` (the WAV check and the start-up dialogs live there). This file is also
that process's driver (`python -m tests.test_app_startup CASE --out FILE --app-args JSON-LIST`), which watches the
window until the case has played out, closes it as the user would, and writes what was shown as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests import desktop_env
from tests.desktop_env import PulseEnv

until = desktop_env.until


ROOT = Path(__file__).resolve().parents[1]
TYPED = "Please say hello in five words."


def run_app(
    case: str,
    tmp_path: Path,
    *app_args: str,
    settings: dict[str, Any] | None = None,
    app_settings: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    config = tmp_path / "config" / "conversimple-studio"
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(json.dumps({"server": {"port": 0}, **(settings or {})}))
    if app_settings is not None:
        (config / "app.json").write_text(json.dumps(app_settings))
    out = tmp_path / "seen.json"
    environment = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CONVERSIMPLE_DATA_DIR": str(tmp_path / "data"),
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.test_app_startup", case, "--out", str(out), "--app-args", json.dumps(app_args)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0 and out.exists(), f"driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    seen: dict[str, Any] = json.loads(out.read_text())
    assert not seen.get("failure"), f"{seen['failure']}\n{json.dumps(seen, indent=1)}"
    # Closing the window ends the app cleanly: the platform stopped and the settings saved.
    assert seen["closed_cleanly"] is True, seen["closed_cleanly"]
    seen["app_json"] = json.loads((config / "app.json").read_text()) if (config / "app.json").exists() else None
    return seen


def _not_installed(kind: str) -> tuple[str, str]:
    """A model of the manifest (`kind` "llm" or "stt") with a package that is not installed: (id, package).
    `make setup` installs the default models and `make test` one more; the 1.5B LLM and whisper-base stay out."""
    from importlib.metadata import PackageNotFoundError, distribution

    from platform_core import load_manifest

    for spec in load_manifest().models:
        for pin in spec.packages if spec.kind == kind else ():
            try:
                distribution(pin.name)
            except PackageNotFoundError:
                return spec.id, pin.name
    pytest.skip(f"every {kind} model of the manifest is installed here")


@pytest.mark.parametrize(("kind", "setting"), [("llm", "llm_model"), ("stt", "stt_model")])
def test_a_model_that_is_not_installed_is_explained(tmp_path: Path, kind: str, setting: str) -> None:
    model, package = _not_installed(kind)
    seen = run_app("engines", tmp_path, settings={"engines": {setting: model}})
    assert seen["window_visible"]
    dialog = seen["dialogs"]
    # What happened (the engine could not load; the model is named, and why) and what to do (the command).
    assert "An engine could not load" in seen["titles"]
    assert f"Model '{model}' needs the package(s) {package}" in dialog and "not installed" in dialog
    assert "What to do: Run: pip install" in dialog and package in dialog.split("What to do:")[1]
    assert not seen["call_enabled"]  # no call can start without the engine
    # kept in the event log after the dialog is closed
    assert "ErrorOccurred" in seen["event_log"] and model in seen["event_log"] and "pip install" in seen["event_log"]
    print(f"{model}: explained {seen['explained_s']:.1f} s after the window opened")
    assert seen["explained_s"] < 30  # the failing engine does not wait for the others
    # The status bar keeps saying so (the engines still loading never report done), and the engines
    # that did load are closed: no llama.cpp process runs on, unused, beside the failed one.
    assert (seen["label_later"], seen["progress_later"]) == ("Engines failed to load: calls are unavailable", False), (
        seen
    )
    assert not any("llama_server" in c for c in seen["children"]), seen["children"]


def test_a_missing_input_wav_is_explained_and_the_microphone_used(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "question.wav"
    seen = run_app("wav", tmp_path, "--input-wav", str(missing))
    assert seen["titles"] == ["WAV file not found"]
    assert f"{missing} does not exist." in seen["dialogs"]
    assert "What to do: Choose one with File > Use a WAV file as the microphone." in seen["dialogs"]
    # The app goes on with the microphone (and says so), and starts the platform as usual.
    assert seen["input_wav"] is None and "microphone (default)" in seen["input_label"]
    assert seen["platform_serving"]
    assert seen["app_json"]["input_wav"] == ""


def test_an_input_wav_given_to_the_app_is_the_next_call_s_microphone(tmp_path: Path) -> None:
    from platform_core.audio_files import write_wav
    from tests.test_app_audio_io import signal

    wav = write_wav(tmp_path / "question.wav", signal(0.3))
    seen = run_app("wav", tmp_path, "--input-wav", str(wav))
    assert seen["dialogs"] == ""
    assert seen["input_wav"] == str(wav) and "WAV question.wav" in seen["input_label"]
    assert seen["source"] == {"type": "GatedSource", "path": str(wav)}


@pytest.mark.slow
def test_a_call_without_its_microphone_goes_on_in_text(pulse_env: PulseEnv, tmp_path: Path) -> None:
    seen = run_app(
        "text-call",
        tmp_path,
        env=pulse_env.env,
        timeout=240,
        app_settings={"input_device": "usb-headset-gone", "output_device": "vspeaker"},
    )
    # The call started anyway, without a microphone, and the user is told why and what to do.
    assert seen["call_started"] and seen["source"] is None
    notice = seen["notice"]
    assert "No microphone: text mode: The input device 'usb-headset-gone' is not available" in notice
    assert "What to do: Pick another in Settings; available:" in notice and "vmic" in notice
    assert "text only (no microphone)" in seen["input_label"]
    # Typed turns work: the agent answered.
    assert seen["typed_turn"]["user"] == TYPED and seen["typed_turn"]["agent"].strip(), seen["typed_turn"]
    # The call was saved with the typed turn, and with the notice among its events.
    assert TYPED in seen["saved"]["transcript"] and "events.jsonl" in seen["saved"]["files"]
    assert "microphone" in seen["saved"]["errors"], seen["saved"]


# --- the driver, in the app's own process ---------------------------------------------------------------


def _boxes(studio: Any) -> list[Any]:
    from PySide6.QtWidgets import QMessageBox

    return [
        w
        for w in studio.app.topLevelWidgets() + studio.window.findChildren(QMessageBox)
        if isinstance(w, QMessageBox) and w.isVisible()
    ]


def _shown(studio: Any, seen: dict[str, Any]) -> None:
    window = studio.window
    boxes = list(dict.fromkeys(_boxes(studio)))
    seen.update(
        window_visible=window.isVisible(),
        titles=[b.windowTitle() for b in boxes],
        dialogs=" | ".join(b.text() for b in boxes),
        engine_label=window.engine_label.text(),
        input_label=window.input_label.text(),
        notice=window.notice_text() if window.notice.isVisible() else "",
        call_enabled=window.call_button.isEnabled(),
        input_wav=str(studio.controller.input_wav) if studio.controller.input_wav else None,
        platform_serving=bool(window.url_label.text()),
    )
    if window.panels is not None:
        window.panels.event_log.refresh()
        seen["event_log"] = window.panels.event_log.view.toPlainText()


async def _engines(studio: Any, seen: dict[str, Any]) -> None:
    t0 = time.monotonic()
    await until(
        lambda: any("engine" in b.windowTitle() for b in _boxes(studio)) or studio.controller.ready,
        90,
        "the engines to fail (or load)",
    )
    seen["explained_s"] = time.monotonic() - t0
    await asyncio.sleep(0.3)  # the event log panel's timer
    _shown(studio, seen)
    await asyncio.sleep(3)  # the engines that were still loading when one failed
    seen["label_later"] = studio.window.engine_label.text()
    seen["progress_later"] = studio.window.progress.isVisible()
    seen["children"] = [" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)]


async def _wav(studio: Any, seen: dict[str, Any]) -> None:
    await until(lambda: bool(studio.window.url_label.text()), 30, "the platform to serve")
    _shown(studio, seen)
    source = studio.controller.call_session.open_source()  # what the next call sends
    path = source.path if source is not None else None  # the WAV file it plays, if any
    seen["source"] = {"type": type(source).__name__, "path": str(path) if path is not None else None}
    if source is not None:
        source.stop()


async def _text_call(studio: Any, seen: dict[str, Any]) -> None:
    from tests.test_app_failures_live import _call, _hang_up_and_read_back, _typed_turn

    controller = studio.controller
    seen["case"] = "no_microphone"
    await until(lambda: controller.ready, 120, "the engines to load")
    await _call(studio)
    seen["call_started"] = True
    seen["source"] = None if controller.call.source is None else type(controller.call.source).__name__
    _shown(studio, seen)
    seen["typed_turn"] = await _typed_turn(studio, TYPED)
    await _hang_up_and_read_back(studio, seen)


def driver(argv: list[str]) -> int:
    from app.main import build, parse_args, run

    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["engines", "wav", "text-call"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--app-args", type=json.loads, default=[])
    args = parser.parse_args(argv)
    app_args = parse_args(args.app_args)
    if app_args.input_wav is not None:  # as app.main.main does
        app_args.input_wav = app_args.input_wav.resolve()
    studio = build(app_args)
    seen: dict[str, Any] = {}
    scenario = {"engines": _engines, "wav": _wav, "text-call": _text_call}[args.case]

    async def watch() -> None:
        try:
            await until(lambda: studio.window.isVisible() and studio.window.panels is not None, 30, "the window")
            await scenario(studio, seen)
        except Exception as exc:
            seen["failure"] = f"{type(exc).__name__}: {exc}"
            _shown(studio, seen)
        finally:
            studio.window.close()  # as the user would: `run` then shuts the platform down and saves settings

    async def main() -> None:
        watcher = asyncio.ensure_future(watch())
        await run(studio)
        await watcher

    with studio.loop:
        try:
            studio.loop.run_until_complete(main())
            seen["closed_cleanly"] = True
        except RuntimeError as exc:  # e.g. the loop stopped with the window, before `run` had shut down
            seen["closed_cleanly"] = f"{type(exc).__name__}: {exc}"
    args.out.write_text(json.dumps(seen, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(driver(sys.argv[1:]))
