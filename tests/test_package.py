"""The packaged build: bundled models, the self-test's checks, and (opt-in) the real bundle.

The build and its self-test take minutes, so that test runs only with CONVERSIMPLE_PACKAGE_TEST=1
(`make package-test` runs the same thing from the command line).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.self_test import check_call, headless_command
from platform_core.models import ModelError, ensure_model
from platform_core.models import store as store_module
from platform_core.models.manifest import manifest_from_dict

ROOT = Path(__file__).resolve().parents[1]
CONTENT = b"bundled model bytes"


def _manifest(sha256: str = hashlib.sha256(CONTENT).hexdigest()) -> Any:
    """A model whose registry package is not installed: only the bundle can provide it."""
    return manifest_from_dict(
        {
            "models": [
                {
                    "id": "tiny",
                    "kind": "tts",
                    "default": True,
                    "assembly": "files",
                    "packages": [{"name": "no-such-package-conversimple", "version": "1.0"}],
                    "sources": [{"package": "no-such-package-conversimple", "path": "x/tiny.onnx"}],
                    "outputs": [{"name": "tiny.onnx", "sha256": sha256, "size": len(CONTENT)}],
                }
            ]
        }
    )


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake PyInstaller bundle folder (sys._MEIPASS) with a models/ folder."""
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle"), raising=False)
    (tmp_path / "bundle" / "models").mkdir(parents=True)
    return tmp_path / "bundle" / "models"


def test_bundled_model_is_used_without_its_package_and_verified_once(
    bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bundle / "tiny.onnx").write_bytes(CONTENT)
    cache = tmp_path / "cache"
    assert ensure_model("tiny", manifest=_manifest(), cache_dir=cache) == bundle / "tiny.onnx"
    assert (cache / "models" / "tiny.bundled.stamp.json").exists()

    def no_hashing(*args: object, **kwargs: object) -> str:
        raise AssertionError("a stamped bundled model must not be hashed again")

    monkeypatch.setattr(store_module, "sha256_file", no_hashing)
    assert ensure_model("tiny", manifest=_manifest(), cache_dir=cache) == bundle / "tiny.onnx"


def test_damaged_bundled_model_says_to_extract_again(bundle: Path, tmp_path: Path) -> None:
    (bundle / "tiny.onnx").write_bytes(CONTENT)
    with pytest.raises(ModelError, match="does not match its SHA-256") as failure:
        ensure_model("tiny", manifest=_manifest("0" * 64), cache_dir=tmp_path / "cache")
    assert "Extract" in failure.value.hint


def test_model_missing_from_the_bundle_falls_back_to_its_packages(bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not installed"):
        ensure_model("tiny", manifest=_manifest(), cache_dir=tmp_path / "cache")


def _report(tool_status: str = "done", user_text: str = "What's the weather in San Francisco?") -> dict[str, Any]:
    metrics = dict.fromkeys(
        ("end_of_turn_delay", "transcription_delay", "llm_ttft", "llm_ttfs", "tts_ttfb", "e2e_latency", "mouth_to_ear"),
        0.5,
    )
    return {
        "status": "ok",
        "call_duration_s": 9.0,
        "errors": [],
        "notes": [],
        "turns": [
            {
                "turn_id": 1,
                "completed": True,
                "user_text": user_text,
                "agent_text": "It is sunny and 21 degrees.",
                "tool_calls": [
                    {
                        "name": "get_weather",
                        "status": tool_status,
                        "arguments": {"location": "San Francisco"},
                        "result": {"condition": "sunny"},
                        "error": None,
                        "duration_s": 0.01,
                    }
                ],
                "metrics": metrics,
            }
        ],
    }


def _voice(seconds: float, rate: int = 48_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def test_self_test_checks_pass_on_a_good_call() -> None:
    stages = check_call(_report(), _voice(1.0), 48_000)
    assert [(s.name, s.ok) for s in stages] == [
        ("call", True),
        ("transcript", True),
        ("tool call", True),
        ("answer", True),
        ("metrics", True),
    ]


def test_self_test_checks_name_what_failed() -> None:
    report = _report(tool_status="error", user_text="what's the weather")
    report["turns"][0]["metrics"]["llm_ttft"] = None
    failed = {s.name: s.detail for s in check_call(report, np.zeros(48_000, dtype=np.int16), 48_000) if not s.ok}
    assert set(failed) == {"transcript", "tool call", "answer", "metrics"}
    assert "francisco" in failed["transcript"] and "llm_ttft" in failed["metrics"]


def test_window_flags_are_not_taken_as_headless_commands() -> None:
    assert headless_command(["--input-wav", "x.wav"]) is None


@pytest.mark.package
@pytest.mark.skipif(
    os.environ.get("CONVERSIMPLE_PACKAGE_TEST") != "1",
    reason="builds the bundle (minutes): set CONVERSIMPLE_PACKAGE_TEST=1",
)
@pytest.mark.timeout(3600)
def test_bundle_builds_and_passes_its_self_test_in_a_clean_environment() -> None:
    """`make package` then the archive's `--self-test` with `env -i` (no venv, no Python, empty HOME)."""
    build = subprocess.run(["make", "package"], cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    version = next(
        line.split('"')[1]
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    archive = ROOT / "dist" / f"conversimple-studio-{version}-linux-x86_64.tar.gz"
    run = subprocess.run(
        [str(ROOT / "packaging" / "package_test.sh"), str(archive)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "PASSED" in run.stdout
