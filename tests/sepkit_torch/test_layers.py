"""The package's layers import downwards only: the leaf packages nothing above them,
``continual/`` nothing of the run layer, and no module the command lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "sepkit_torch"
# What each layer may import from sepkit_torch (besides itself and the private helpers).
HELPERS = {"sepkit_torch._errors", "sepkit_torch._files", "sepkit_torch._progress"}
ALLOWED = {
    "models": {"sepkit_torch.models"},
    "data": {"sepkit_torch.data"},
    "metrics": {"sepkit_torch.metrics"},
    "continual": {
        "sepkit_torch.continual",
        "sepkit_torch.models",
        "sepkit_torch.data",
        "sepkit_torch.metrics",
        "sepkit_torch.complexity",
    },
}
COMMAND_LINES = {"sepkit_torch.pipeline.cli", "sepkit_torch.restore_cli"}
# The entry points of ``python -m``: nothing imports them, and they import the command lines.
ENTRY_POINTS = {"sepkit_torch.__main__", "sepkit_torch.pipeline.__main__"}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _imports(path: Path) -> set[str]:
    """Every sepkit_torch module `path` imports, at the top or inside functions
    (``from sepkit_torch import x`` counts as ``sepkit_torch.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sepkit_torch":
                found |= {f"sepkit_torch.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] == "sepkit_torch"}


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


MODULES = dict(_modules())


def test_the_modules_are_found():
    assert {"sepkit_torch.models.backbone", "sepkit_torch.pipeline.runner"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n)))
def test_lower_layers_import_nothing_above_them(name):
    allowed = ALLOWED[_layer(name)] | HELPERS
    imported = _imports(MODULES[name])
    bad = sorted(m for m in imported if not any(m == a or m.startswith(a + ".") for a in allowed))
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_command_line(name):
    if name in COMMAND_LINES | ENTRY_POINTS:
        pytest.skip("a command line or entry point itself")
    imported = _imports(MODULES[name])
    bad = sorted(m for m in imported if any(m == c or m.startswith(c + ".") for c in COMMAND_LINES))
    assert not bad, f"{name} imports the command line {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    """The checker itself: an upward import, also inside a function, is found."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from sepkit_torch.pipeline import run\n    from sepkit_torch import load\n"
    )
    assert _imports(bad) == {"sepkit_torch.pipeline", "sepkit_torch.load"}
