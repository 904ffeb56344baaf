"""The voice loop's layers, checked on the source: the transport knows nothing of the pipeline, and
inside the pipeline the conversation uses the responder, listener and playback, never the reverse."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_architecture import imports_in

CORE = Path(__file__).resolve().parent.parent / "platform_core"


def core_imports(path: Path) -> set[str]:
    return {imp.module for imp in imports_in(path.read_text(encoding="utf-8"))
            if imp.module.startswith("platform_core")}


@pytest.mark.parametrize("path", sorted((CORE / "transport").glob("*.py")), ids=lambda p: p.name)
def test_the_transport_imports_nothing_from_the_pipeline(path: Path) -> None:
    bad = [m for m in core_imports(path) if m.startswith("platform_core.pipeline")]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("name", ["responder", "listener", "playback", "turn", "turns"])
def test_the_pipeline_parts_import_neither_the_conversation_nor_the_transport(name: str) -> None:
    imported = core_imports(CORE / "pipeline" / f"{name}.py")
    bad = [m for m in imported if m == "platform_core.pipeline.conversation" or m.startswith("platform_core.transport")]
    assert not bad, f"{name}.py imports {bad}"
