"""Errors an LLM backend raises while answering (start-up failures are `EngineUnavailable`)."""

from __future__ import annotations

from platform_core.errors import StudioError


class LLMError(StudioError, RuntimeError):
    """A request failed after the engine started: bad response, server error, timeout."""


class LLMConnectionLost(LLMError):
    """The connection to the server failed or dropped (no HTTP answer): it may have died."""
