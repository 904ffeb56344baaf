"""The one error type of the model store."""

from __future__ import annotations

from platform_core.engines.base import EngineUnavailable


class ModelError(EngineUnavailable):
    """A model could not be prepared. The message says what happened; `hint` names the fix."""
