"""STT model choice: a manifest id ("whisper-tiny.en") or the path of a user's own ggml file."""

from __future__ import annotations

from pathlib import Path

from platform_core.models.errors import ModelError
from platform_core.models.manifest import load_manifest
from platform_core.models.store import Progress, ensure_model

GGML_MAGIC = 0x67676D6C


def _looks_like_path(name: str) -> bool:
    return name.endswith(".bin") or "/" in name or "\\" in name or name.startswith("~")


def resolve_stt_model(name_or_path: str | Path, progress: Progress | None = None) -> Path:
    """Path of a whisper.cpp ggml model: a manifest STT id (assembled if needed) or an existing file."""
    if isinstance(name_or_path, Path) or _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelError(
                f"Speech-to-text model file {path} does not exist.",
                "Choose an existing whisper.cpp ggml .bin file, or a built-in model such as whisper-tiny.en.",
            )
        with path.open("rb") as fh:
            magic = int.from_bytes(fh.read(4), "little")
        if magic != GGML_MAGIC:
            raise ModelError(
                f"{path} is not a whisper.cpp ggml model (wrong magic number).",
                "Use a ggml-*.bin file made for whisper.cpp (not a GGUF, CTranslate2 or PyTorch file).",
            )
        return path
    manifest = load_manifest()
    stt_ids = [m.id for m in manifest.models if m.kind == "stt"]
    if name_or_path not in stt_ids:
        raise ModelError(
            f"{name_or_path!r} is not a speech-to-text model.",
            f"Use one of {', '.join(stt_ids)} or the path of a ggml .bin file.",
        )
    return ensure_model(name_or_path, progress)
