"""The package's layers, checked on the source: every import (top-level or inside a function) of every
module under src/ferkit is parsed with ``ast``; no two modules may import each other, directly or
round a circle, and no module may import from a higher layer, or from a sibling package of its own layer."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module belongs to the longest prefix that names it; the packages of one layer are
# siblings and import nothing from each other.
LAYERS: list[list[str]] = [
    ["ferkit.errors", "ferkit.figures", "ferkit.version"],
    ["ferkit.data"],
    ["ferkit.models"],
    ["ferkit.core"],
    ["ferkit.training", "ferkit.evaluation", "ferkit.export"],
    ["ferkit.inference"],
    ["ferkit.apps"],
    ["ferkit.demo"],
    ["ferkit.cli"],
    ["ferkit", "ferkit.__main__"],  # the package's public names, and ``python -m ferkit``
]

Graph = dict[str, set[str]]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports; ``from X import name`` counts as importing the
    module X.name when there is one, else X."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != module}


def import_graph(root: Path = SRC) -> Graph:
    files = {module_name(p, root): p for p in sorted((root / "ferkit").rglob("*.py"))}
    known = set(files)
    return {m: imported_modules(m, p.name == "__init__.py", ast.parse(p.read_text(), str(p)), known)
            for m, p in files.items()}


def cycles(graph: Graph) -> list[list[str]]:
    """The import circles: every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def place(module: str, layers: list[list[str]] = LAYERS) -> tuple[int, str]:
    """(layer number, package) of ``module``: its longest declared prefix."""
    best: tuple[int, str] | None = None
    for number, packages in enumerate(layers):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (best is None or len(package) > len(best[1])):
                best = (number, package)
    if best is None:
        raise AssertionError(f"{module} is in no layer: declare it in LAYERS")
    return best


def layer_violations(graph: Graph, layers: list[list[str]] = LAYERS) -> list[str]:
    """Each import of a higher layer, or of a sibling package of the same layer, as 'a -> b'."""
    bad = []
    for a, targets in sorted(graph.items()):
        la, pa = place(a, layers)
        for b in sorted(targets):
            lb, pb = place(b, layers)
            if lb > la or (lb == la and pa != pb):
                bad.append(f"{a} (layer {la}) -> {b} (layer {lb})")
    return bad


def test_the_checks_find_circles_and_upward_imports():
    graph = {"ferkit.core.a": {"ferkit.training.b"}, "ferkit.training.b": {"ferkit.core.a"},
             "ferkit.evaluation.c": {"ferkit.training.b"}, "ferkit.apps.d": {"ferkit.core.a"}}
    assert cycles(graph) == [["ferkit.core.a", "ferkit.training.b"]]
    assert layer_violations(graph) == ["ferkit.core.a (layer 3) -> ferkit.training.b (layer 4)",
                                       "ferkit.evaluation.c (layer 4) -> ferkit.training.b (layer 4)"]


def test_imports_are_resolved_as_python_resolves_them(tmp_path):
    pkg = tmp_path / "ferkit"
    for name, text in {"__init__.py": "from .version import __version__\n", "version.py": "",
                       "core/__init__.py": "", "core/a.py": "from .. import version\nfrom . import b\n",
                       "core/b.py": "def f():\n    from ..apps import c\n",
                       "apps/__init__.py": "", "apps/c.py": "import ferkit.core.a\nfrom ferkit.core.b import f\n"}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["ferkit"] == {"ferkit.version"}
    assert graph["ferkit.core.a"] == {"ferkit.version", "ferkit.core.b"}
    assert graph["ferkit.core.b"] == {"ferkit.apps.c"}  # an import inside a function counts
    assert graph["ferkit.apps.c"] == {"ferkit.core.a", "ferkit.core.b"}
    assert layer_violations(graph) == ["ferkit.core.b (layer 3) -> ferkit.apps.c (layer 6)"]
    assert cycles(graph) == [["ferkit.apps.c", "ferkit.core.a", "ferkit.core.b"]]


def test_every_module_has_a_layer():
    graph = import_graph()
    assert "ferkit.core.checkpoint" in graph and len(graph) > 50
    for module in graph:
        place(module)


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_no_import_from_a_higher_layer_or_a_sibling():
    assert layer_violations(import_graph()) == []
