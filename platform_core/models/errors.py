"""The one error type of the model store."""

from __future__ import annotations

from platform_core.errors import StudioError


class ModelError(StudioError, RuntimeError):
    """A model could not be prepared. The message says what happened; `hint` names the fix."""
