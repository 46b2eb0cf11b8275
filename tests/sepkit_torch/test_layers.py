"""The package's layers import downwards only: every module of sepkit_torch belongs to a
layer, and each layer imports only the layers below it (the leaf packages nothing above
them, ``continual/`` nothing of the run layer, restoring nothing of the pipeline), no module
the command lines; ``import sepkit_torch`` loads no pipeline module; and only
``training.py`` builds or steps an optimizer (the one training loop)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2] / "sepkit_torch"
# The private helpers: every layer may import them; they import only each other.
HELPERS = {"_errors", "_files", "_progress", "_checks"}
# The layers, by the first name under sepkit_torch ("" is the package's __init__), and the
# layers each may import besides itself and the helpers.
BELOW_CONTINUAL = {"models", "data", "metrics", "complexity", "speed", "training"}
BELOW_PIPELINE = BELOW_CONTINUAL | {"continual", "distributed", "checkpoint"}
ALLOWED = {
    **{helper: set() for helper in HELPERS},
    "models": set(),
    "data": set(),
    "metrics": set(),
    "distributed": set(),
    "_fit_state": set(),  # the training loop's own state (weight average, resume, schedule)
    "complexity": {"models"},
    "speed": {"models"},
    "training": {"metrics", "speed", "models", "_fit_state"},
    "continual": BELOW_CONTINUAL,
    "checkpoint": {"data"},
    "inference": {"checkpoint", "continual", "models", "data"},
    "restore_cli": {"inference", "data"},
    "pipeline": BELOW_PIPELINE,
    "": BELOW_PIPELINE | {"inference"},  # the public API: no pipeline, no command line
    "__main__": {"pipeline", "restore_cli"},
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


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = dict(_modules())


def test_the_modules_are_found():
    assert {"sepkit_torch.models.backbone", "sepkit_torch.pipeline.runner"} <= set(MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_has_a_layer(name):
    assert _layer(name) in ALLOWED, f"{name} belongs to no layer of ALLOWED"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_layers_import_nothing_above_them(name):
    layer = _layer(name)
    allowed = {f"sepkit_torch.{m}" for m in ALLOWED[layer] | HELPERS | {layer}}
    imported = _imports(MODULES[name]) - {"sepkit_torch"}
    bad = sorted(m for m in imported if not any(m == a or m.startswith(a + ".") for a in allowed))
    assert not bad, f"{name} (layer {layer or 'sepkit_torch'}) imports {bad}"


def test_importing_the_package_loads_no_pipeline_module():
    code = (
        "import sepkit_torch, sys; "
        "print(sorted(m for m in sys.modules if m.startswith('sepkit_torch.pipeline')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_training_builds_or_steps_an_optimizer(name):
    """No ``x.step()`` call and no ``torch.optim`` outside training.py and its own state
    module (its schedule; only training may import it): every loop is fit."""
    if name in ("sepkit_torch.training", "sepkit_torch._fit_state"):
        pytest.skip("the one training loop")
    found = []
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "step":
                found.append(f"line {node.lineno}: .step()")
        if isinstance(node, ast.Attribute) and node.attr == "optim":
            found.append(f"line {node.lineno}: torch.optim")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.optim"):
            found.append(f"line {node.lineno}: from torch.optim")
    assert not found, f"{name}: {found}"


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
