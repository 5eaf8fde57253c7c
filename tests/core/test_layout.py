"""The floor plan holds: packages import only from the floors below them (or their own),
no module imports itself back through others, and no module outgrows one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "coin_sync"

# Lowest first. A module may import from its own floor and the ones below.
FLOORS = [
    {"outcome", "stop", "clock", "files", "__init__"},
    {"config"},
    {"backend"},
    {"sync"},
    {"locks"},
    {"k8s", "observe"},
    {"loop"},
    {"session"},
    {"cli", "chart", "usage", "__main__"},
]
MAX_LINES = 300


def _floor(part: str) -> int:
    for level, names in enumerate(FLOORS):
        if part in names:
            return level
    raise AssertionError(f"coin_sync/{part} is on no floor: add it to FLOORS in {__file__}")


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coin_sync"):
            if node.module == "coin_sync":  # `from coin_sync import x`: x may be a module
                found.update(f"coin_sync.{a.name}" for a in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("coin_sync"))
    return found


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {i for i in _imports(path) if i in MODULES and i != name} for name, path in MODULES.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_floor(module: str) -> None:
    mine = _floor(_top(module))
    upward = sorted(i for i in GRAPH[module] if _floor(_top(i)) > mine)
    assert not upward, f"{module} imports from a higher floor: {upward}"


def test_no_import_circle() -> None:
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError("import circle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            visit(nxt)
        path.pop()
        done.add(node)

    for module in sorted(GRAPH):
        visit(module)


def test_the_circle_check_sees_a_circle() -> None:
    GRAPH_BACKUP = dict(GRAPH)
    try:
        GRAPH["coin_sync.clock"] = {*GRAPH["coin_sync.clock"], "coin_sync.cli"}
        with pytest.raises(AssertionError, match="import circle"):
            test_no_import_circle()
    finally:
        GRAPH.clear()
        GRAPH.update(GRAPH_BACKUP)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_line_budget(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module}: {lines} lines (at most {MAX_LINES}: split it by job)"


def test_outside_a_cluster_nothing_imports_k8s_but_the_guarded_paths() -> None:
    # coin_sync.k8s pulls in `kubernetes` lazily, but even the package itself stays out
    # of every import chain a pass outside a cluster walks: only lazy (function-level)
    # imports may name it.
    eager = {
        name
        for name, path in MODULES.items()
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("coin_sync.k8s")
        and not name.startswith("coin_sync.k8s")
    }
    assert not eager, f"modules outside coin_sync.k8s import it at module level: {sorted(eager)}"


def _reads(attribute: str) -> set[str]:
    """The modules that read `attribute` off some object (settings.kubernetes.<attribute>)."""
    return {
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == attribute
    }


def test_only_the_session_reads_k8s_lock_required() -> None:
    # What K8S_LOCK_REQUIRED means (try the API in a cluster without a token, say so in the
    # warning, end the pass with 3) is decided in one place; the rest is handed `required`.
    assert _reads("lock_required") == {"coin_sync.session"}


def test_only_the_session_opens_the_k8s_package() -> None:
    # It asks coin_sync.locks.cluster first and imports coin_sync.k8s only when the
    # integration is on (the subprocess proof: tests/core/test_session.py).
    importers = {
        name
        for name, imported in GRAPH.items()
        if not name.startswith("coin_sync.k8s") and any(i.startswith("coin_sync.k8s") for i in imported)
    }
    assert importers == {"coin_sync.session"}


def _readme_map() -> dict[str, set[str]]:
    """The README's module map ("Desarrollo"): each folder's listed files."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Desarrollo") :].split("```")[1]
    listed: dict[str, set[str]] = {}
    folder = ""
    for line in block.splitlines():
        entry = line.strip().split(" ")[0]
        if line.startswith("  ") and not line.startswith("    ") and entry.endswith("/"):
            folder = entry.rstrip("/")
        elif line.startswith("    ") and entry.endswith(".py"):
            listed.setdefault(folder, set()).add(entry)
        elif line.startswith("  ") and entry.endswith(".py"):
            listed.setdefault("", set()).add(entry)
    return listed


def test_the_readme_module_map_lists_every_module_in_its_package() -> None:
    listed = _readme_map()
    missing = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
        and path.name not in listed.get("" if path.parent == PACKAGE else path.parent.name, set())
    ]
    assert not missing, f"README «Desarrollo» does not list: {missing}"
