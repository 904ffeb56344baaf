"""The model manifest (`resources/models.json`): which registry packages make each model, and its hash.

Each entry names the packages (exact versions), how their files assemble into the model
(`concat` parts in order, `ct2-to-ggml` conversion, or `files` used in place) and the SHA-256 and
size of every final file. Nothing here touches the files: see `store.py` for that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["stt", "llm", "tts", "turn"]
Assembly = Literal["concat", "ct2-to-ggml", "files"]

MANIFEST_PATH = Path(__file__).resolve().parents[2] / "resources" / "models.json"


@dataclass(frozen=True)
class PackagePin:
    name: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class SourceFile:
    """One file inside an installed package (path relative to site-packages, as in RECORD)."""

    package: str
    path: str
    sha256: str | None = None  # lets a failed check name the damaged package
    size: int | None = None


@dataclass(frozen=True)
class OutputFile:
    name: str
    sha256: str | None  # None: not verified yet (the store then trusts the size only)
    size: int | None


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: ModelKind
    description: str
    license: str
    default: bool
    packages: tuple[PackagePin, ...]
    assembly: Assembly
    sources: tuple[SourceFile, ...]
    outputs: tuple[OutputFile, ...]  # the first one is the path `ensure_model` returns
    note: str = ""
    pip_flags: str = ""  # e.g. "--no-deps" for a package whose declared dependencies are not needed

    def pin(self, package: str) -> PackagePin:
        for pin in self.packages:
            if pin.name == package:
                return pin
        raise KeyError(package)


@dataclass(frozen=True)
class Manifest:
    models: tuple[ModelSpec, ...]

    def get(self, model_id: str) -> ModelSpec:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        known = ", ".join(m.id for m in self.models)
        raise KeyError(f"unknown model {model_id!r} (known: {known})")

    @property
    def default_ids(self) -> list[str]:
        return [m.id for m in self.models if m.default]

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def _spec_from_dict(d: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        id=d["id"],
        kind=d["kind"],
        description=d.get("description", ""),
        license=d.get("license", ""),
        default=bool(d.get("default", False)),
        packages=tuple(PackagePin(p["name"], p["version"]) for p in d["packages"]),
        assembly=d["assembly"],
        sources=tuple(SourceFile(s["package"], s["path"], s.get("sha256"), s.get("size")) for s in d["sources"]),
        outputs=tuple(OutputFile(o["name"], o.get("sha256"), o.get("size")) for o in d["outputs"]),
        note=d.get("note", ""),
        pip_flags=d.get("pip_flags", ""),
    )


def manifest_from_dict(data: dict[str, Any]) -> Manifest:
    return Manifest(tuple(_spec_from_dict(d) for d in data["models"]))


@lru_cache(maxsize=4)
def load_manifest(path: Path = MANIFEST_PATH) -> Manifest:
    """The manifest at `path` (cached: it is read once per process)."""
    return manifest_from_dict(json.loads(path.read_text(encoding="utf-8")))
