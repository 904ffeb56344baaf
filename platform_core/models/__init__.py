"""Model manifest and store: registry packages -> verified model files in the user cache."""

from platform_core.models.errors import ModelError
from platform_core.models.manifest import Manifest, ModelSpec, load_manifest
from platform_core.models.store import ensure_model, prepare_models
from platform_core.models.stt_model import resolve_stt_model

__all__ = [
    "Manifest",
    "ModelError",
    "ModelSpec",
    "ensure_model",
    "load_manifest",
    "prepare_models",
    "resolve_stt_model",
]
