"""The data package's layout: modules import downwards only, and no private names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

import sepkit_torch
from sepkit_torch.data import degradations as ops
from sepkit_torch.data import get_degradation
from sepkit_torch.data.registry import BUILTIN_PRESETS, DEFAULT_PRESET

PACKAGE = Path(sepkit_torch.__file__).parent

# Each module of sepkit_torch.data and the modules of the package it may import.
LAYERS = {
    "sampling": set(),
    "registry": {"sampling"},
    "degradations": {"registry", "sampling"},
    "image_io": set(),
    "shapes": set(),
    "soft_scenes": {"degradations", "sampling", "shapes"},
    "detailed_scenes": {"degradations", "sampling", "shapes"},
    "synthetic": {"detailed_scenes", "sampling", "soft_scenes"},
    "patches": {"image_io", "registry"},
    "folders": {"degradations", "image_io", "patches", "registry", "sampling"},
    "datasets": {"degradations", "folders", "patches", "registry", "sampling", "synthetic"},
    "estimation": {"degradations", "registry", "sampling"},
    "statistics": {"sampling"},
}


def imports(path: Path):
    """(module, name) of every ``from sepkit_torch... import name`` in `path`."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sepkit_torch"):
            for alias in node.names:
                yield node.module, alias.name


def test_data_modules_import_downwards_only():
    for module, allowed in LAYERS.items():
        used = {
            source.rsplit(".", 1)[-1]
            for source, _ in imports(PACKAGE / "data" / f"{module}.py")
            if source.startswith("sepkit_torch.data.")
        }
        assert used <= allowed, f"{module} imports {sorted(used - allowed)}"
    assert set(LAYERS) == {p.stem for p in (PACKAGE / "data").glob("*.py")} - {"__init__"}


def test_no_private_name_crosses_a_module_of_the_data_package():
    for path in PACKAGE.rglob("*.py"):
        inside = path.parent.name == "data"
        for source, name in imports(path):
            if inside or source.startswith("sepkit_torch.data"):
                assert not name.startswith("_"), f"{path.name} imports {name} from {source}"


@pytest.mark.parametrize("name", sorted(BUILTIN_PRESETS))
def test_builtin_functions_take_their_defaults_from_the_presets(name):
    fn = get_degradation(name).fn
    params = inspect.signature(fn).parameters.values()
    defaults = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}
    assert set(defaults) == set(BUILTIN_PRESETS[name][DEFAULT_PRESET])  # every range a keyword
    assert set(defaults.values()) == {None}  # no range written twice
    x = torch.rand(2, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fn(x, 3), get_degradation(name)(x, 3))


def test_noise_parts_default_to_the_noise_preset():
    x = torch.rand(2, 1, 20, 24, generator=torch.Generator().manual_seed(0))
    n = BUILTIN_PRESETS["N"][DEFAULT_PRESET]
    assert torch.equal(ops.gaussian_noise(x, 1), ops.gaussian_noise(x, 1, sigma=n["sigma"]))
    assert torch.equal(
        ops.optical_nonuniformity(x, 1), ops.optical_nonuniformity(x, 1, delta=n["delta"])
    )
    assert torch.equal(
        ops.stripe_noise(x, 1),
        ops.stripe_noise(x, 1, gain_std=n["gain_std"], offset_std=n["offset_std"]),
    )
