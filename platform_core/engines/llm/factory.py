"""Pick the LLM backend from the configuration."""

from __future__ import annotations

from pathlib import Path

from platform_core.config import EngineConfig, engine_threads
from platform_core.engines.base import EngineUnavailable, LanguageModel


def create_llm(config: EngineConfig) -> LanguageModel:
    """An unstarted backend for `config.llm`; call `await llm.start()` next (it loads or connects)."""
    if config.llm == "embedded":
        from platform_core.engines.llm.embedded_llama import EmbeddedLlamaLLM

        if config.llm_model.endswith(".gguf"):
            path = Path(config.llm_model).expanduser()
        else:
            from platform_core.models import ensure_model

            path = ensure_model(config.llm_model)
        threads = engine_threads(config.llm_threads, take_turns=config.take_turns)
        return EmbeddedLlamaLLM(
            path,
            threads=threads,
            context=config.llm_context,
            nice=config.engine_nice,
            parallel=config.llm_parallel + config.spare_llm_slots(),
            restart_wait_s=config.llm_queue_wait_s,  # a turn's one budget for waiting on the LLM
        )
    if config.llm == "ollama":
        from platform_core.engines.llm.ollama import DEFAULT_HOST, OllamaLLM

        return OllamaLLM(config.llm_model, config.llm_url or DEFAULT_HOST)
    if config.llm == "openai":
        from platform_core.engines.llm.openai_compat import OpenAICompatibleLLM

        if not config.llm_url:
            raise EngineUnavailable("No URL set for the OpenAI-compatible LLM server", "set the llm_url setting")
        return OpenAICompatibleLLM(
            config.llm_url, config.llm_model, config.llm_api_key, name=f"openai:{config.llm_model}"
        )
    raise EngineUnavailable(f"Unknown LLM backend {config.llm!r}", "set llm to embedded, ollama or openai")
