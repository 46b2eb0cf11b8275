"""``sepkit`` never imports torch, and its public API is what ``__all__`` says."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sepkit

SEPKIT_DIR = Path(sepkit.__file__).parent


def test_import_sepkit_does_not_import_torch():
    code = (
        "import sys, numpy as np, sepkit; "
        "sepkit.detachment_cost(np.ones((2, 2)), [0, 0]); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sepkit_torch')); "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_sepkit_sources_never_import_torch():
    sources = sorted(SEPKIT_DIR.rglob("*.py"))
    assert sources
    offenders = [
        f"{path.relative_to(SEPKIT_DIR)}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if module.split(".")[0] in ("torch", "sepkit_torch")
    ]
    assert not offenders


def test_all_names_exist():
    for name in sepkit.__all__:
        assert hasattr(sepkit, name), name
    for name in (
        "as_graph",
        "Graph",
        "symmetrize",
        "structural_entropy_1d",
        "node_entropy_1d",
        "structural_entropy_2d",
        "move_delta",
        "detachment_cost",
        "warmup",
    ):
        assert name in sepkit.__all__, name


def _module_name(path: Path) -> str:
    parts = path.relative_to(SEPKIT_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(path: Path, known: set[str]):
    """The sepkit modules a module imports when it is imported (``TYPE_CHECKING`` blocks
    included, imports inside functions left out)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.If | ast.Try):
            nodes.extend(node.body + node.orelse + getattr(node, "handlers", []))
        elif isinstance(node, ast.ExceptHandler):
            nodes.extend(node.body)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in known else node.module


def test_no_import_circle():
    paths = sorted(SEPKIT_DIR.rglob("*.py"))
    names = {_module_name(p): p for p in paths}
    graph = {
        name: {m for m in _module_level_imports(path, set(names)) if m in names and m != name}
        for name, path in names.items()
    }
    assert "sepkit._graph_checks" in graph["sepkit.graph"]  # the walk finds imports
    # depth-first search for a cycle
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            assert state.get(other) != 1, " -> ".join([*trail, name, other])
            if other not in state:
                visit(other, [*trail, name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
