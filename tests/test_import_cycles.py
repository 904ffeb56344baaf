"""Import direction, checked on the source (ast, no imports run): the modules that used to form
cycles now import one way only (TYPE_CHECKING imports count)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_architecture import imports_in

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(path: Path) -> set[str]:
    return {imp.module for imp in imports_in(path.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("path", sorted((ROOT / "platform_core" / "server").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_server_does_not_import_the_platform(path: Path) -> None:
    """platform.py imports server/; server/ knows its host only as server/host.py's ServerHost."""
    assert "platform_core.platform" not in _imported_modules(path)


@pytest.mark.parametrize("name", ["runtime.py", "connection.py", "wire.py", "tools.py", "schema.py"])
def test_the_agent_sdk_runtime_does_not_import_the_agent(name: str) -> None:
    """agent.py imports the runtime; the runtime knows an agent only as its ServedAgent protocol."""
    assert not {"agent_sdk.agent", "agent_sdk"} & _imported_modules(ROOT / "agent_sdk" / name)
