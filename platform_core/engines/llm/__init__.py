"""LLM backends (one per file) and `create_llm`, which picks one from the configuration."""

from platform_core.engines.llm.errors import LLMError
from platform_core.engines.llm.factory import create_llm

__all__ = ["LLMError", "create_llm"]
